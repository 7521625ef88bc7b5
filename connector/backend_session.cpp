#include "backend_session.hpp"

#include "io/clock.hpp"
#include "wire/datagram_frame.hpp"

#include <spdlog/spdlog.h>

namespace ztna {

namespace {
using tcp = boost::asio::ip::tcp;
using udp = boost::asio::ip::udp;
constexpr size_t kMaxWaitingDatagrams = 16; // per flow, while its backend's name resolves
} // namespace

BackendSession::BackendSession(io::Endpoint& endpoint, io::PathSignaling& signaling,
                               const Address& intermediate, session::GateConfig gate,
                               SocketBudget& budget, ConnectorCounters& counters)
    : io_(endpoint.socket().io()), gate_(std::move(gate)), budget_(budget), counters_(counters),
      liveness_({}, io::now()),
      paths_(endpoint, gate_.config().session_id, path::Role::Server, intermediate, signaling) {}

void BackendSession::set_quic(std::unique_ptr<io::QuicPeer> q) {
  quic_ = std::move(q);
  paths_.attach(*quic_);
}

BackendSession::~BackendSession() {
  *alive_ = false;
  splices_.clear(); // before quic_: splices refer to it
  budget_.in_use -= std::min(budget_.in_use, sockets_);
}

bool BackendSession::take_socket() {
  if (sockets_ >= budget_.per_session || budget_.in_use >= budget_.total) {
    counters_.backend_sockets_refused++;
    return false;
  }
  sockets_++;
  budget_.in_use++;
  return true;
}

void BackendSession::give_socket() {
  if (sockets_ == 0) return;
  sockets_--;
  budget_.in_use--;
}

void BackendSession::on_handshake_completed() {
  // The handshake already checked the certificate: an agent, TLS client usage, the very agent
  // the intermediate offered this session for (connector.cpp sets the requirement).
  const auto& peer = *quic_->conn().peer_identity();
  if (credentials_.refuse_if_revoked(peer, quic_->conn().path().remote,
                                     "session " + fmt::format("{:016x}", id()))) {
    quic_->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized), "certificate revoked");
    return;
  }
  gate_.on_handshake(peer);
  spdlog::info("session {:016x}: end-to-end handshake with agent '{}' complete; waiting for its "
               "authorization",
               id(), agent());
}

// Carries out what the gate decided. Called from inside ngtcp2's callbacks too: a close is
// queued by quic::Connection and the rest of the packet is dropped.
void BackendSession::run_gate() {
  for (auto& action : gate_.take_actions()) {
    if (auto* open = std::get_if<session::OpenBackend>(&action)) {
      connect_backend(open->stream, *open->spec);
    } else if (auto* reset = std::get_if<session::ResetStream>(&action)) {
      reject_stream(reset->stream, reset->code, reset->why);
    } else if (auto* c = std::get_if<session::Consume>(&action)) {
      quic_->conn().consume(c->stream, c->bytes);
    } else if (auto* d = std::get_if<session::DeliverDatagram>(&action)) {
      deliver_udp(d->flow, *d->spec, std::move(d->payload));
    } else if (auto* ping = std::get_if<session::AnswerPing>(&action)) {
      quic_->conn().send_datagram(wire::encode_ping(true, ping->id));
    } else if (auto* close = std::get_if<session::CloseSession>(&action)) {
      spdlog::warn("session {:016x}: refusing agent '{}': {}", id(), agent(), close->reason);
      quic_->close(static_cast<uint64_t>(close->code), close->reason);
      return;
    } else if (auto* ok = std::get_if<session::Authorized>(&action)) {
      spdlog::info("session {:016x}: {}", id(), ok->line);
    } else if (auto* dropped = std::get_if<session::DatagramRefused>(&action)) {
      spdlog::warn("session {:016x}: agent '{}': {}; dropped (datagrams_wrong_service, said once "
                   "per session)",
                   id(), agent(), dropped->why);
    }
  }
  if (!quic_->conn().finished()) quic_->schedule_flush();
}

void BackendSession::on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) {
  if (auto it = splices_.find(stream_id); it != splices_.end()) {
    it->second->on_stream_data(data, fin);
    return;
  }
  gate_.on_stream_data(stream_id, data, fin, io::unix_ms());
  run_gate();
}

void BackendSession::connect_backend(int64_t stream_id, const ServiceSpec& spec) {
  if (!take_socket()) {
    return reject_stream(stream_id, wire::StreamError::BackendRefused,
                         "backend socket budget spent (" + std::to_string(sockets_) +
                             " in this session, " + std::to_string(budget_.in_use) + " in all)");
  }
  auto resolver = std::make_shared<tcp::resolver>(io_);
  auto socket = std::make_shared<tcp::socket>(io_);
  resolver->async_resolve(
      spec.host, std::to_string(spec.port),
      [this, alive = alive_, resolver, socket, stream_id, &spec](boost::system::error_code ec,
                                                                 tcp::resolver::results_type r) {
        if (!*alive) return;
        if (ec) {
          give_socket();
          counters_.backend_connect_failures++;
          return reject_stream(stream_id, wire::StreamError::BackendRefused,
                               "service '" + spec.name + "': backend " + spec.endpoint() +
                                   " does not resolve: " + ec.message());
        }
        boost::asio::async_connect(
            *socket, r,
            [this, alive, socket, stream_id, &spec](boost::system::error_code ec2,
                                                    const tcp::endpoint&) {
              if (!*alive) return;
              if (ec2) {
                give_socket();
                counters_.backend_connect_failures++;
                return reject_stream(stream_id, wire::StreamError::BackendRefused,
                                     "service '" + spec.name + "': backend " + spec.endpoint() +
                                         " refused: " + ec2.message());
              }
              auto [early, fin] = gate_.take_early(stream_id);
              if (quic_->conn().finished()) return give_socket();
              counters_.streams_opened++;
              spdlog::debug("session {:016x}: stream {} -> '{}' ({})", id(), stream_id, spec.name,
                            spec.endpoint());
              auto splice = std::make_unique<io::TcpSplice>(*quic_, stream_id, [this](int64_t sid) {
                if (splices_.erase(sid)) give_socket();
              });
              auto* s = splice.get();
              splices_.emplace(stream_id, std::move(splice));
              s->on_stream_data(early, fin);
              s->attach(std::move(*socket));
            });
      });
}

void BackendSession::reject_stream(int64_t stream_id, wire::StreamError why,
                                   const std::string& log_line) {
  if (why == wire::StreamError::NotAuthorized) {
    // Said once per session: an agent that keeps trying gets counters, not a log per stream.
    if (!wrong_service_logged_)
      spdlog::warn("session {:016x}: agent '{}': {}; refused (streams_wrong_service)", id(),
                   agent(), log_line);
    wrong_service_logged_ = true;
  } else {
    spdlog::warn("session {:016x}: agent '{}': stream {}: {}", id(), agent(), stream_id, log_line);
  }
  gate_.on_stream_gone(stream_id);
  quic_->conn().reset(stream_id, static_cast<uint64_t>(why));
  quic_->schedule_flush();
}

void BackendSession::on_stream_reset(int64_t stream_id, uint64_t app_error) {
  gate_.on_stream_gone(stream_id);
  if (auto it = splices_.find(stream_id); it != splices_.end())
    it->second->on_stream_reset(app_error);
}

void BackendSession::on_stream_closed(int64_t stream_id) {
  gate_.on_stream_gone(stream_id);
  if (auto it = splices_.find(stream_id); it != splices_.end()) it->second->on_stream_closed();
}

void BackendSession::on_stream_writable(int64_t stream_id) {
  if (auto it = splices_.find(stream_id); it != splices_.end()) it->second->on_stream_writable();
}

void BackendSession::on_datagram(std::span<const uint8_t> data) {
  gate_.on_datagram(data);
  run_gate();
}

void BackendSession::deliver_udp(uint32_t flow_id, const ServiceSpec& spec,
                                 std::vector<uint8_t> payload) {
  auto flow = flows_.find(flow_id);
  if (flow == flows_.end()) {
    if (!take_socket()) {
      counters_.datagrams_dropped++;
      return;
    }
    UdpFlow f;
    f.spec = &spec;
    flow = flows_.emplace(flow_id, std::move(f)).first;
    counters_.udp_flows_opened++;
    // Never a blocking look-up on the event loop: literals at once, names asynchronously.
    if (auto literal = Address::parse(spec.endpoint())) {
      udp::endpoint ep;
      ep.resize(literal->len());
      std::memcpy(ep.data(), literal->sa(), literal->len());
      open_udp(flow_id, ep);
    } else {
      auto resolver = std::make_shared<udp::resolver>(io_);
      resolver->async_resolve(
          spec.host, std::to_string(spec.port),
          [this, alive = alive_, resolver, flow_id](boost::system::error_code ec,
                                                    udp::resolver::results_type r) {
            if (!*alive || !flows_.count(flow_id)) return;
            if (ec || r.empty()) {
              counters_.backend_connect_failures++;
              spdlog::warn("session {:016x}: udp backend {} does not resolve: {}", id(),
                           flows_[flow_id].spec->endpoint(), ec ? ec.message() : "no address");
              flows_.erase(flow_id);
              give_socket();
              return;
            }
            open_udp(flow_id, r.begin()->endpoint());
          });
    }
  }
  auto& f = flow->second;
  f.last_used = std::chrono::steady_clock::now();
  if (!f.ready) {
    if (f.waiting.size() < kMaxWaitingDatagrams)
      f.waiting.push_back(std::move(payload));
    else
      counters_.datagrams_dropped++;
    return;
  }
  boost::system::error_code ec;
  f.socket->send(boost::asio::buffer(payload.data(), payload.size()), 0, ec);
  if (ec) counters_.datagrams_dropped++;
}

void BackendSession::open_udp(uint32_t flow_id, const udp::endpoint& target) {
  auto& f = flows_.at(flow_id);
  f.socket = std::make_unique<udp::socket>(io_);
  boost::system::error_code ec;
  f.socket->open(target.protocol(), ec);
  if (!ec) f.socket->connect(target, ec);
  if (ec) {
    counters_.backend_connect_failures++;
    spdlog::warn("session {:016x}: udp backend {}: {}", id(), f.spec->endpoint(), ec.message());
    flows_.erase(flow_id);
    give_socket();
    return;
  }
  f.buf.resize(65536);
  f.ready = true;
  spdlog::debug("session {:016x}: udp flow {} -> '{}'", id(), flow_id, f.spec->name);
  for (auto& p : f.waiting) {
    f.socket->send(boost::asio::buffer(p.data(), p.size()), 0, ec);
    if (ec) counters_.datagrams_dropped++;
  }
  f.waiting.clear();
  receive_udp(flow_id);
}

void BackendSession::receive_udp(uint32_t flow_id) {
  auto& f = flows_.at(flow_id);
  f.socket->async_receive(boost::asio::buffer(f.buf), [this, alive = alive_, flow_id](
                                                          boost::system::error_code ec, size_t n) {
    if (!*alive || ec == boost::asio::error::operation_aborted) return;
    auto it = flows_.find(flow_id);
    if (it == flows_.end()) return;
    if (!ec) {
      // A reply goes back on the flow it answers: same session, same flow id.
      it->second.last_used = std::chrono::steady_clock::now();
      auto dg = wire::encode_datagram(flow_id, it->second.spec->name, {it->second.buf.data(), n});
      if (!quic_->conn().send_datagram(dg)) counters_.datagrams_dropped++;
      quic_->schedule_flush();
    }
    // ICMP port unreachable surfaces as an error here; the flow stays for later replies.
    receive_udp(flow_id);
  });
}

void BackendSession::expire_flows(std::chrono::steady_clock::time_point now,
                                  std::chrono::seconds idle) {
  for (auto it = flows_.begin(); it != flows_.end();) {
    if (now - it->second.last_used > idle) {
      it = flows_.erase(it);
      give_socket();
    } else {
      ++it;
    }
  }
}

} // namespace ztna
