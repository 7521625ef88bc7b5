#include "relay/relay_table.hpp"

namespace ztna {

RelayTable::Bucket* RelayTable::acquire(const std::string& identity) {
  if (!per_identity_.limited()) return nullptr;
  auto it = identities_.try_emplace(identity, Bucket{RateLimiter(per_identity_.bytes_per_second,
                                                                 per_identity_.burst_bytes)})
                .first;
  it->second.users++;
  return &it->second;
}

void RelayTable::release(Bucket* b) {
  if (!b || --b->users > 0) return;
  for (auto it = identities_.begin(); it != identities_.end(); ++it)
    if (&it->second == b) {
      identities_.erase(it);
      return;
    }
}

void RelayTable::bind(uint64_t session_id, const Address& agent,
                      const std::string& agent_identity, const Address& connector,
                      const std::string& connector_identity) {
  unbind(session_id);
  Route r{End{agent, acquire(agent_identity)}, End{connector, acquire(connector_identity)},
          RateLimiter(per_session_.bytes_per_second, per_session_.burst_bytes)};
  sessions_.emplace(session_id, std::move(r));
}

void RelayTable::unbind(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  release(it->second.agent.identity);
  release(it->second.connector.identity);
  sessions_.erase(it);
}

void RelayTable::rebind(const Address& from, const Address& to) {
  for (auto& [id, r] : sessions_) {
    if (r.agent.address == from) r.agent.address = to;
    if (r.connector.address == from) r.connector.address = to;
  }
}

RelayTable::Verdict RelayTable::route(uint64_t session_id, const Address& from, size_t bytes,
                                      uint64_t now_ns, Address& to) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return Verdict::NotAnEnd;
  auto& r = it->second;
  // An agent and connector behind the same address would make the direction ambiguous; the
  // broker never binds such a pair.
  const End* sender = from == r.agent.address       ? &r.agent
                      : from == r.connector.address ? &r.connector
                                                    : nullptr;
  if (!sender) return Verdict::NotAnEnd;
  const double cost = static_cast<double>(bytes);
  if (per_session_.limited() && !r.session.allow(now_ns, cost)) return Verdict::SessionQuota;
  if (sender->identity && !sender->identity->limiter.allow(now_ns, cost))
    return Verdict::IdentityQuota;
  to = sender == &r.agent ? r.connector.address : r.agent.address;
  return Verdict::Forward;
}

std::optional<Address> RelayTable::peer_of(uint64_t session_id, const Address& from) const {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return std::nullopt;
  if (from == it->second.agent.address) return it->second.connector.address;
  if (from == it->second.connector.address) return it->second.agent.address;
  return std::nullopt;
}

} // namespace ztna
