// The shared state of several intermediates in etcd (DESIGN D11): store::ClusterState's calls
// carried out by an EtcdClient, its timers on the event loop, and what it learns handed to the
// daemon (SharedState::Listener). The log says when etcd goes and comes back: the intermediate
// carries on without it (docs/operations.md, "When etcd is down").
#pragma once

#include "io/etcd_client.hpp"
#include "store/cluster_state.hpp"
#include "store/shared_state.hpp"

#include <boost/asio.hpp>

#include <memory>

namespace ztna::io {

class EtcdState final : public store::SharedState {
public:
  EtcdState(boost::asio::io_context& io, std::vector<EtcdClient::Endpoint> endpoints,
            store::ClusterConfig config, Listener& listener);
  ~EtcdState() override;

  void start() override;
  void stop() override;
  void peer_homed(Role role, const std::string& name, const std::string& address,
                  const std::vector<std::string>& services) override;
  void peer_left(Role role, const std::string& name) override;
  void publish_policy(std::string policy, std::string crl) override;
  bool shared() const override { return true; }
  nlohmann::json status() const override;

private:
  void drive();
  void on_event(const store::ClusterState::Event& e);
  // On a clean stop: our records go at once instead of with the lease's TTL. Blocks for at
  // most kRevokeWait.
  void revoke_lease();
  static constexpr std::chrono::milliseconds kRevokeWait{500};

  std::vector<EtcdClient::Endpoint> endpoints_;
  store::ClusterState core_;
  EtcdClient client_;
  Listener& listener_;
  boost::asio::steady_timer timer_;
  std::string watch_endpoint_;
  uint64_t down_since_unix_ms_ = 0;
  uint64_t outages_ = 0;
  bool driving_ = false;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ztna::io
