#include "control/service_directory.hpp"

#include <limits>

namespace ztna {

void ServiceDirectory::add(ConnectorId connector, const std::vector<std::string>& services) {
  for (auto& s : services) by_service_[s].insert(connector);
}

void ServiceDirectory::remove(ConnectorId connector) {
  for (auto it = by_service_.begin(); it != by_service_.end();) {
    it->second.erase(connector);
    it = it->second.empty() ? by_service_.erase(it) : std::next(it);
  }
}

bool ServiceDirectory::has(const std::string& service) const {
  return by_service_.count(service) != 0;
}

std::vector<ServiceDirectory::ConnectorId>
ServiceDirectory::connectors_for(const std::string& service) const {
  auto it = by_service_.find(service);
  if (it == by_service_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::optional<ServiceDirectory::ConnectorId>
ServiceDirectory::pick(const std::string& service, const std::function<size_t(ConnectorId)>& load,
                       const std::function<bool(ConnectorId)>& already_used) {
  auto candidates = connectors_for(service);
  if (candidates.empty()) return std::nullopt;
  for (auto c : candidates)
    if (already_used(c)) return c;
  size_t best = std::numeric_limits<size_t>::max();
  std::vector<ConnectorId> least;
  for (auto c : candidates) {
    size_t l = load(c);
    if (l < best) {
      best = l;
      least.clear();
    }
    if (l == best) least.push_back(c);
  }
  return least[rotation_++ % least.size()];
}

} // namespace ztna
