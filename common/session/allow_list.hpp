// The connector's own allow list (DESIGN D6): for each service it publishes, the agents and
// groups it will serve, whatever the intermediate decides. A compromised intermediate can sign
// authorizations, but it cannot make a connector serve an agent this list leaves out.
//
// Given as `--allow SERVICE=PRINCIPAL[,PRINCIPAL...]`, where PRINCIPAL is an agent name,
// `group:NAME` (an agent group from the certificate), or `*` (any agent the intermediate
// authorizes). Repeating --allow for one service adds to its list.
#pragma once

#include "identity/identity.hpp"

#include <map>
#include <set>
#include <string>
#include <string_view>

namespace ztna::session {

class AllowList {
public:
  // Adds one --allow spec. False with a one-line `error` if it is malformed.
  bool add(std::string_view spec, std::string& error);
  // Does the list let this agent (its certificate's name and groups) reach `service`?
  bool allows(std::string_view service, const Identity& agent) const;
  // Could an agent of this name be allowed at all (before its groups are known)? False only if
  // the service's list names neither it, nor any group, nor "*".
  bool may_allow(std::string_view service, std::string_view agent) const;
  bool has(std::string_view service) const { return entries_.count(std::string(service)) != 0; }
  // "alice-laptop, group:eng" or "*" for logs and status; "" if the service has no entry.
  std::string describe(std::string_view service) const;

private:
  struct Entry {
    bool any = false;
    std::set<std::string> agents, groups;
  };
  std::map<std::string, Entry, std::less<>> entries_;
};

} // namespace ztna::session
