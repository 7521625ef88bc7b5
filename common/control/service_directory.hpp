// Which connectors serve which service, and which one a new session goes to.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ztna {

class ServiceDirectory {
public:
  using ConnectorId = uint64_t;

  void add(ConnectorId connector, const std::vector<std::string>& services);
  void remove(ConnectorId connector);
  bool has(const std::string& service) const;
  std::vector<ConnectorId> connectors_for(const std::string& service) const;

  // Picks a connector serving `service`. One the agent already has a session with wins
  // (`already_used`), so its streams share that session; otherwise the one with the fewest
  // sessions (`load`), rotating among equals so that load spreads.
  std::optional<ConnectorId> pick(const std::string& service,
                                  const std::function<size_t(ConnectorId)>& load,
                                  const std::function<bool(ConnectorId)>& already_used);

private:
  std::map<std::string, std::set<ConnectorId>> by_service_;
  uint64_t rotation_ = 0;
};

} // namespace ztna
