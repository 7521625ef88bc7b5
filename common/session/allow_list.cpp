#include "session/allow_list.hpp"

#include "wire/text.hpp"

#include <algorithm>

namespace ztna::session {

bool AllowList::add(std::string_view spec, std::string& error) {
  const auto eq = spec.find('=');
  if (eq == std::string_view::npos) {
    error = "'" + std::string(spec) + "': expected SERVICE=PRINCIPAL[,PRINCIPAL...]";
    return false;
  }
  const auto service = spec.substr(0, eq);
  if (!wire::is_valid_name(service)) {
    error = "'" + std::string(spec) + "': invalid service name";
    return false;
  }
  Entry e;
  auto rest = spec.substr(eq + 1);
  if (rest.empty()) {
    error = "'" + std::string(spec) + "': no principal after '='";
    return false;
  }
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    constexpr std::string_view kGroup = "group:";
    if (item == "*") {
      e.any = true;
    } else if (item.substr(0, kGroup.size()) == kGroup &&
               is_valid_identity_name(item.substr(kGroup.size()))) {
      e.groups.emplace(item.substr(kGroup.size()));
    } else if (is_valid_identity_name(item)) {
      e.agents.emplace(item);
    } else {
      error = "'" + std::string(spec) + "': '" + std::string(item) +
              "' is not an agent name, group:NAME or *";
      return false;
    }
  }
  auto& into = entries_[std::string(service)];
  into.any = into.any || e.any;
  into.agents.merge(e.agents);
  into.groups.merge(e.groups);
  return true;
}

bool AllowList::allows(std::string_view service, const Identity& agent) const {
  if (agent.role != Role::Agent) return false;
  auto it = entries_.find(service);
  if (it == entries_.end()) return false;
  const auto& e = it->second;
  if (e.any || e.agents.count(agent.name)) return true;
  return std::any_of(agent.groups.begin(), agent.groups.end(),
                     [&](const std::string& g) { return e.groups.count(g) != 0; });
}

bool AllowList::may_allow(std::string_view service, std::string_view agent) const {
  auto it = entries_.find(service);
  if (it == entries_.end()) return false;
  const auto& e = it->second;
  return e.any || !e.groups.empty() || e.agents.count(std::string(agent));
}

std::string AllowList::describe(std::string_view service) const {
  auto it = entries_.find(service);
  if (it == entries_.end()) return {};
  const auto& e = it->second;
  if (e.any) return "*";
  std::string out;
  for (const auto& a : e.agents)
    out += (out.empty() ? "" : ", ") + a;
  for (const auto& g : e.groups)
    out += (out.empty() ? "group:" : ", group:") + g;
  return out;
}

} // namespace ztna::session
