// An agent's or a connector's control connections to one or several intermediates (DESIGN D11),
// all on the daemon's one socket.
//
// - Home (agents): the daemon is registered with one intermediate at a time, its home. It
//   connects to all of them at once and keeps the first that registers, the one with the
//   shortest round trip (handshake and Hello: two round trips), closing the others. When the
//   home is lost, the race runs again at once among all of them: the next one by RTT that is
//   alive becomes home, within a round trip or two of noticing the loss.
// - All (connectors): the daemon stays registered with every intermediate, so that an agent
//   homed on any of them meets it there: signaling and relay never cross from one intermediate
//   to another (docs/architecture.md, "Several intermediates").
//
// One intermediate in the list is exactly the single control connection of before.
#pragma once

#include "io/control_client.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ztna::io {

struct IntermediateEndpoint {
  Address address;
  std::string name; // expected in its certificate
};

class ControlPlane {
public:
  enum class Mode { Home, All };
  struct Listener {
    std::function<void(size_t i)> connected; // registered with intermediate i
    std::function<void(size_t i, const wire::ControlMessage&)> message;
    std::function<void(size_t i, const std::string& why)> lost; // was registered, no longer
  };

  // `base` holds what every connection shares (TLS, role, services, refusals, timers); its
  // intermediate and server name come from each endpoint.
  ControlPlane(boost::asio::io_context& io, Endpoint& endpoint, ControlClient::Options base,
               std::vector<IntermediateEndpoint> intermediates, Mode mode, Listener listener);
  void start();
  void stop();
  void set_tls(quic::TlsIdentityPtr tls);

  size_t size() const { return clients_.size(); }
  const Address& address(size_t i) const { return intermediates_[i].address; }
  // Which configured intermediate `from` is, if any (relay frames come from them only).
  std::optional<size_t> index_of(const Address& from) const;
  bool connected(size_t i) const { return clients_[i]->state() == ControlClient::State::Connected; }
  // Home mode: the intermediate we are registered with; All mode: the first registered one.
  std::optional<size_t> home() const;
  bool send(size_t i, const wire::ControlMessage& m);
  void set_probing(size_t i, bool probing);
  quic::Timestamp last_received(size_t i) const { return clients_[i]->last_received(); }
  // Our address as the home (or the first registered intermediate) sees it.
  Address observed_address() const;
  ControlClient& client(size_t i) { return *clients_[i]; }
  const ControlClient& client(size_t i) const { return *clients_[i]; }

  // Registrations made, over all intermediates.
  uint64_t connects() const;
  // The "control" object of the status document: the home's (or first registered) client's,
  // plus one entry per intermediate when there are several.
  nlohmann::json status() const;
  std::string describe_state() const; // "connected to X" / the last error, for refusals

private:
  void on_connected(size_t i);
  void on_lost(size_t i, const std::string& why);

  std::vector<IntermediateEndpoint> intermediates_;
  Mode mode_;
  Listener listener_;
  std::vector<std::unique_ptr<ControlClient>> clients_;
  std::optional<size_t> home_;
  bool had_home_ = false; // a later home is a move (rehomes_)
  uint64_t rehomes_ = 0;
};

} // namespace ztna::io
