// Keeps a session's Liveness (common/session) fed from its QUIC connection on the event loop,
// for the agent and the connector alike: when the peer was last heard, which path the session
// is on, whether it carries streams; and keeps the connection's keepalive in step with it.
#pragma once

#include "io/quic_peer.hpp"
#include "session/liveness.hpp"

#include <optional>
#include <string>

namespace ztna::io {

// Why the session's peer must be taken for dead, or nullopt. Only an established session is
// judged: a handshake has its own timeout. `relay_heard`: when our control connection last heard
// from the intermediate (ControlClient::last_received()).
std::optional<std::string> watch_session(session::Liveness& liveness, QuicPeer& quic, bool busy,
                                         quic::Timestamp relay_heard);

// Whether the session is on the relay, established, and has heard nothing for a while: a reason
// to ask whether the intermediate is still there (ControlClient::set_probing).
bool relay_silent(const session::Liveness& liveness, const QuicPeer& quic);

// Whether a session's QUIC connection is on a direct path now (not a relay path).
bool on_direct_path(const QuicPeer& quic);

} // namespace ztna::io
