// The control protocol's stream on a control connection: the first client-initiated
// bidirectional stream (docs/protocol.md, "Control framing").
#pragma once

#include "quic/connection.hpp"
#include "wire/control_decoder.hpp"
#include "wire/control_message.hpp"

#include <optional>
#include <vector>

namespace ztna {

class ControlStream {
public:
  // Client side: opens the stream. False if the connection cannot open one yet.
  bool open(quic::Connection& conn);
  // Feeds stream data. Data on any other stream than the control stream, or a malformed
  // frame, returns false with error() set: the caller closes the connection.
  bool on_data(quic::Connection& conn, int64_t stream_id, std::span<const uint8_t> data,
               std::vector<wire::ControlMessage>& out);
  void send(quic::Connection& conn, const wire::ControlMessage& m);
  bool is_open() const { return id_.has_value(); }
  // Bytes sent and not yet acknowledged by the peer: a peer that stops reading makes this grow,
  // and the owner closes it before it costs unbounded memory.
  size_t backlog(const quic::Connection& conn) const { return id_ ? conn.unacknowledged(*id_) : 0; }
  // Bytes of an incomplete frame: non-zero at the end of the stream means it was cut short.
  size_t buffered() const { return decoder_.buffered(); }
  const std::string& error() const { return error_; }
  void reset() { *this = ControlStream{}; }

private:
  std::optional<int64_t> id_;
  wire::ControlDecoder decoder_;
  std::string error_;
};

} // namespace ztna
