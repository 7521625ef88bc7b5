#include "identity/identity.hpp"

namespace ztna {

const char* to_string(Role role) {
  switch (role) {
  case Role::Agent:
    return "agent";
  case Role::Connector:
    return "connector";
  case Role::Intermediate:
    return "intermediate";
  }
  return "unknown";
}

const char* with_article(Role role) {
  switch (role) {
  case Role::Agent:
    return "an agent";
  case Role::Connector:
    return "a connector";
  case Role::Intermediate:
    return "an intermediate";
  }
  return "an unknown role";
}

std::optional<Role> role_from_string(std::string_view s) {
  if (s == "agent") return Role::Agent;
  if (s == "connector") return Role::Connector;
  if (s == "intermediate") return Role::Intermediate;
  return std::nullopt;
}

bool is_valid_identity_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxIdentityName) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (!alnum(c) && c != '-' && c != '.') return false;
    if (c == '.' && i + 1 < s.size() && s[i + 1] == '.') return false;
  }
  return true;
}

std::string Identity::describe() const {
  return std::string(to_string(role)) + " '" + name + "'";
}

} // namespace ztna
