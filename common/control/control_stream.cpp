#include "control/control_stream.hpp"

namespace ztna {

bool ControlStream::open(quic::Connection& conn) {
  if (id_) return true;
  id_ = conn.open_bidi_stream();
  return id_.has_value();
}

bool ControlStream::on_data(quic::Connection& conn, int64_t stream_id,
                            std::span<const uint8_t> data, std::vector<wire::ControlMessage>& out) {
  if (!id_) {
    // Server side: the client's first bidirectional stream is the control stream.
    if (stream_id != 0) {
      error_ = "data on stream " + std::to_string(stream_id) + " before the control stream";
      return false;
    }
    id_ = stream_id;
  }
  if (stream_id != *id_) {
    error_ = "unexpected stream " + std::to_string(stream_id) + " on a control connection";
    return false;
  }
  conn.consume(stream_id, data.size());
  if (!decoder_.feed(data, out)) {
    error_ = decoder_.error();
    return false;
  }
  return true;
}

void ControlStream::send(quic::Connection& conn, const wire::ControlMessage& m) {
  if (!id_) return;
  auto bytes = wire::encode_control(m);
  conn.send(*id_, bytes);
}

} // namespace ztna
