// What an intermediate shares with the other intermediates of its deployment (DESIGN D11): where
// its peers are homed (with a connector's services), and the policy and CRL every intermediate
// enforces. Two implementations: the embedded one, for a lone intermediate (nothing to share, no
// extra service), and etcd's (common/io/etcd_state, on store::ClusterState).
#pragma once

#include "identity/identity.hpp"
#include "store/cluster_state.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace ztna::store {

class SharedState {
public:
  // The daemon's side: what the deployment decided.
  class Listener {
  public:
    virtual ~Listener() = default;
    // A policy record newer than the last: enforce it (or say why not and keep the old one).
    virtual void on_shared_policy(const PolicyRecord& record) = 0;
    // The deployment has no policy yet: publish ours.
    virtual void on_shared_policy_absent() = 0;
  };

  virtual ~SharedState() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  // A peer registered here (again: the record is replaced), or left.
  virtual void peer_homed(Role role, const std::string& name, const std::string& address,
                          const std::vector<std::string>& services) = 0;
  virtual void peer_left(Role role, const std::string& name) = 0;
  // A policy and CRL validated here, for every intermediate (SIGHUP).
  virtual void publish_policy(std::string policy, std::string crl) = 0;
  // Is there anyone to share with? (false: embedded)
  virtual bool shared() const = 0;
  virtual nlohmann::json status() const = 0;
};

// A lone intermediate: its own files are the policy, and nobody needs to know its peers.
class EmbeddedState final : public SharedState {
public:
  void start() override {}
  void stop() override {}
  void peer_homed(Role, const std::string&, const std::string&,
                  const std::vector<std::string>&) override {}
  void peer_left(Role, const std::string&) override {}
  void publish_policy(std::string, std::string) override {}
  bool shared() const override { return false; }
  nlohmann::json status() const override { return {{"mode", "embedded"}}; }
};

} // namespace ztna::store
