// The agent's and connector's control connection to the intermediate (DESIGN D2): connects,
// registers with Hello, learns its observed address, and reconnects with backoff when lost.
#pragma once

#include "control/backoff.hpp"
#include "control/control_stream.hpp"
#include "io/endpoint.hpp"
#include "io/quic_peer.hpp"
#include "io/refusal_log.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>

namespace ztna::io {

class ControlClient : public quic::ConnectionEvents {
public:
  // What our side offers as max_idle_timeout; the intermediate cannot make it longer.
  static constexpr std::chrono::seconds kIdleTimeout{30};
  struct Options {
    Address intermediate;
    std::string server_name;
    quic::TlsIdentityPtr tls;
    wire::Role role = wire::Role::Agent;
    std::vector<std::string> services;
    RefusalLog* refusals = nullptr; // where a refused intermediate certificate is counted
    std::chrono::milliseconds keepalive{10000};
    std::chrono::milliseconds idle_timeout = kIdleTimeout;
  };
  struct Listener {
    std::function<void()> connected;                           // registered, address known
    std::function<void(const wire::ControlMessage&)> message;  // anything else the server says
    std::function<void(const std::string& why)> lost;          // connection gone; retrying
  };
  // Replaced: another daemon registered our identity; we do not reconnect (see on_lost).
  enum class State { Connecting, Connected, Backoff, Stopped, Replaced };

  ControlClient(boost::asio::io_context& io, Endpoint& endpoint, Options options, Listener listener);
  void start();
  // Closes the connection cleanly (CONNECTION_CLOSE) and stops reconnecting.
  void stop();
  bool send(const wire::ControlMessage& m);
  // Reloaded credentials: used from the next connection on. If the CRL now lists the
  // intermediate we are connected to, the connection closes at once.
  void set_tls(quic::TlsIdentityPtr tls);
  // While a relayed session hears nothing, the daemon asks whether the intermediate is still
  // there (DESIGN D10): a Heartbeat goes out at once and then every second, and the keepalive
  // drops to kProbeKeepalive. A live intermediate acknowledges within a round trip; a restarted
  // one answers with a stateless reset (RFC 9000 §10.3); one that says nothing within
  // probe_deadline() is taken for dead and the connection for lost, so that the daemon moves
  // to another intermediate. Called again and again (every sweep) while it holds.
  static constexpr std::chrono::milliseconds kProbeKeepalive{1000};
  void set_probing(bool probing);
  // max(600 ms, 5 x the control connection's smoothed RTT).
  std::chrono::milliseconds probe_deadline() const;
  // When the intermediate was last heard from (io::now()); 0 if never on this connection.
  quic::Timestamp last_received() const;

  State state() const { return state_; }
  const char* state_name() const;
  const Address& observed_address() const { return observed_; }
  const Address& intermediate() const { return options_.intermediate; }
  const std::string& last_error() const { return last_error_; }
  uint64_t connects() const { return connects_; }
  double rtt_ms() const;
  // The "control" object of the agent's and connector's status documents.
  nlohmann::json status() const;

  // quic::ConnectionEvents
  void on_handshake_completed() override;
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override;

private:
  void connect();
  void on_lost(const std::string& why);

  boost::asio::io_context& io_;
  Endpoint& endpoint_;
  Options options_;
  Listener listener_;
  std::unique_ptr<QuicPeer> peer_;
  ControlStream stream_;
  Backoff backoff_;
  boost::asio::steady_timer retry_timer_;
  std::mt19937 rng_{std::random_device{}()};
  State state_ = State::Connecting;
  Address observed_;
  std::string last_error_;
  uint64_t connects_ = 0;
  bool probing_ = false;
  quic::Timestamp heartbeat_sent_ = 0;
};

} // namespace ztna::io
