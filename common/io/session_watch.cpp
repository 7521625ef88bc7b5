#include "io/session_watch.hpp"

#include "io/clock.hpp"
#include "path/session_paths.hpp"

namespace ztna::io {

bool on_direct_path(const QuicPeer& quic) {
  return quic.attached() && !path::is_relay_local(quic.conn().path().local);
}

SessionWatch watch_session(session::Liveness& liveness, QuicPeer& quic, bool busy,
                           quic::Timestamp relay_heard) {
  if (!quic.attached() || quic.conn().finished() || !quic.conn().handshake_completed()) return {};
  const auto t = now();
  if (quic.last_received() != 0) liveness.on_received(quic.last_received());
  if (relay_heard != 0) liveness.on_relay_heard(relay_heard);
  liveness.on_sample(quic.packets_received(), t);
  liveness.set_busy(busy);
  liveness.set_direct(on_direct_path(quic), t);
  if (quic.conn().keepalive() != liveness.keepalive()) {
    quic.conn().set_keepalive(liveness.keepalive());
    quic.schedule_flush(); // re-arms the timer for the new keepalive
  }
  return {liveness.verdict(t), liveness.should_probe(t)};
}

} // namespace ztna::io
