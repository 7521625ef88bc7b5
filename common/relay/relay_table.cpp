#include "relay/relay_table.hpp"

namespace ztna {

void RelayTable::bind(uint64_t session_id, const Address& agent, const Address& connector) {
  sessions_[session_id] = Ends{agent, connector};
}

void RelayTable::unbind(uint64_t session_id) { sessions_.erase(session_id); }

void RelayTable::rebind(const Address& from, const Address& to) {
  for (auto& [id, ends] : sessions_) {
    if (ends.agent == from) ends.agent = to;
    if (ends.connector == from) ends.connector = to;
  }
}

std::optional<Address> RelayTable::route(uint64_t session_id, const Address& from) const {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return std::nullopt;
  const auto& e = it->second;
  // An agent and connector behind the same address would make the direction ambiguous;
  // the intermediate never binds such a pair (see Intermediate::open_session).
  if (from == e.agent) return e.connector;
  if (from == e.connector) return e.agent;
  return std::nullopt;
}

} // namespace ztna
