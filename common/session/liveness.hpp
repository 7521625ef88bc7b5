// Is the other end of a session still there? (DESIGN D10)
//
// A session outlives the control plane, so neither the intermediate nor our control connection
// can tell us the peer died; the session must notice on its own, within seconds and not at the
// 30 s QUIC idle timeout. The evidence is silence: no packet from the peer on any path. Silence
// only means something while the peer is prompted to answer, so the owner sets the QUIC
// keepalive to keepalive(): short while the session carries streams (a PING after one quiet
// second, answered by an ACK), long while it idles.
//
// Silence counts from the later of the last packet received and the last change of path or
// relay state: a session that just moved, or whose relay just came back, gets its full grace.
// What it may last depends on where the session stands:
// - on a direct path: keepalive + direct_grace. Longer than the agent's consent timeout, so that
//   a dead NAT mapping leads to a fallback onto the relay (RFC 7675), not to a verdict here;
// - on the relay, bound at the intermediate: keepalive + relay_grace, but only while the
//   intermediate itself is heard from (on our control connection, within relay_fresh): a silent
//   relay may be a dead intermediate, which is no reason to end the session;
// - on the relay while the intermediate says the peer's control connection is gone: the peer
//   has peer_lost_limit to come back (it may be re-homing) before the session ends;
// - on the relay while our own control connection is down or the session not yet bound again:
//   no verdict; a relay will come back or the QUIC idle timeout ends the session.
//
// Sans-IO: time is explicit, the owner polls verdict() (at next_timeout() at the latest).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace ztna::session {

using Timestamp = uint64_t; // nanoseconds, monotonic

enum class RelayState {
  Bound,    // the intermediate relays the session: both ends are registered
  Unbound,  // our control connection is down, or the session is not announced again yet
  PeerLost, // the intermediate told us the other end's control connection is gone
};
const char* to_string(RelayState s);

struct LivenessConfig {
  std::chrono::milliseconds idle_keepalive{10000}; // no streams: what QUIC keepalive is now
  std::chrono::milliseconds busy_keepalive{1000};  // streams open: a silent peer shows at once
  std::chrono::milliseconds relay_grace{3000};
  std::chrono::milliseconds direct_grace{8000};
  std::chrono::milliseconds peer_lost_limit{10000};
  std::chrono::milliseconds relay_fresh{2500};
};

class Liveness {
public:
  Liveness(LivenessConfig config, Timestamp now);

  // A packet of the session arrived from the peer (any path) at `when`.
  void on_received(Timestamp when) { last_received_ = std::max(last_received_, when); }
  // The session carries streams (busy) or not: changes keepalive().
  void set_busy(bool busy) { busy_ = busy; }
  // A sample of the session's traffic, taken now: how many packets arrived in all so far.
  // Packets arriving in a stream (kFlowingPackets or more since the last sample) make a short
  // silence suspicious at once (should_probe()).
  void on_sample(uint64_t packets_received, Timestamp now);
  // Whether the owner should ask if the intermediate is still there: the session is on the relay
  // and silent for longer than it should be (keepalive + 500 ms; 300 ms if packets were
  // streaming in just before the silence).
  bool should_probe(Timestamp now) const;
  // The QUIC path the session is on now.
  void set_direct(bool direct, Timestamp now);
  void set_relay(RelayState state, Timestamp now);
  // The intermediate that relays the session was last heard from at `when`.
  void on_relay_heard(Timestamp when) { relay_heard_ = std::max(relay_heard_, when); }

  std::chrono::milliseconds keepalive() const {
    return busy_ ? config_.busy_keepalive : config_.idle_keepalive;
  }
  bool direct() const { return direct_; }
  RelayState relay() const { return relay_; }
  // Why the peer must be taken for dead, or nullopt while it may still answer.
  std::optional<std::string> verdict(Timestamp now) const;
  // When verdict() could change next, if nothing else happens.
  Timestamp next_timeout() const;
  // Nanoseconds since the peer was last heard (0 if just now).
  Timestamp silent_for(Timestamp now) const { return now > last_received_ ? now - last_received_ : 0; }

private:
  // The silence allowed in the current state, or nullopt for no limit.
  std::optional<Timestamp> allowed() const;

  LivenessConfig config_;
  Timestamp last_received_;
  Timestamp changed_at_; // last change of path or relay state
  Timestamp relay_heard_ = 0;
  uint64_t packets_sampled_ = 0;
  Timestamp flowing_at_ = 0; // the last sample that saw packets streaming in
  bool busy_ = false;
  bool direct_ = false;
  RelayState relay_ = RelayState::Bound;
};

} // namespace ztna::session
