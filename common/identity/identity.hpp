// Who a peer is, as its certificate says (DESIGN D6, docs/security.md): a role, a name that is
// unique within that role, and the groups policy refers to.
//
// Encoding in the X.509 certificate (made by certs/make-certs):
//   - exactly one SAN URI  ztna://<role>/<name>   role: agent | connector | intermediate
//   - any number of SAN URIs  ztna://group/<group>  (agents and connectors only, at most 32)
//   - extended key usage: agent clientAuth; connector serverAuth + clientAuth;
//     intermediate serverAuth.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ztna {

enum class Role : uint8_t { Agent, Connector, Intermediate };

const char* to_string(Role role);
// "an agent", "a connector", "an intermediate": for log lines.
const char* with_article(Role role);
std::optional<Role> role_from_string(std::string_view s);

constexpr size_t kMaxIdentityName = 64;
constexpr size_t kMaxGroups = 32;

// An identity or group name: letters, digits, '-' and '.', 1..64 bytes, starting and ending with
// a letter or digit, no "..". Narrower than what the wire allows (wire/text.hpp), so every
// identity name is also a valid wire name and safe in logs, JSON and policy files.
bool is_valid_identity_name(std::string_view s);

struct Identity {
  Role role = Role::Agent;
  std::string name;
  std::vector<std::string> groups; // sorted, no duplicates
  bool client_auth = false;        // extended key usage: TLS client (1.3.6.1.5.5.7.3.2)
  bool server_auth = false;        // extended key usage: TLS server (1.3.6.1.5.5.7.3.1)
  std::array<uint8_t, 32> cert_sha256{}; // SHA-256 of the certificate (DER)
  std::string serial;                    // hex, for logs

  // "agent 'alice-laptop'" for log lines.
  std::string describe() const;
};

} // namespace ztna
