// Keeps a session's Liveness (common/session) fed from its QUIC connection on the event loop,
// for the agent and the connector alike: when the peer was last heard, which path the session
// is on, whether it carries streams; and keeps the connection's keepalive in step with it.
#pragma once

#include "io/quic_peer.hpp"
#include "session/liveness.hpp"

#include <optional>
#include <string>

namespace ztna::io {

struct SessionWatch {
  // Why the session's peer must be taken for dead, if it must.
  std::optional<std::string> dead;
  // The session is on the relay and silent for longer than it should be: a reason to ask
  // whether the intermediate is still there (ControlClient::set_probing).
  bool probe_relay = false;
};

// Feeds `liveness` and judges. Only an established session is judged: a handshake has its own
// timeout. `relay_heard`: when our control connection last heard from the intermediate
// (ControlClient::last_received()).
SessionWatch watch_session(session::Liveness& liveness, QuicPeer& quic, bool busy,
                           quic::Timestamp relay_heard);

// Whether a session's QUIC connection is on a direct path now (not a relay path).
bool on_direct_path(const QuicPeer& quic);

} // namespace ztna::io
