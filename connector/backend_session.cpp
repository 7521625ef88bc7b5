#include "backend_session.hpp"

#include "wire/datagram_frame.hpp"

#include <spdlog/spdlog.h>

namespace ztna {

namespace {
constexpr size_t kMaxUdpFlows = 1024;
using tcp = boost::asio::ip::tcp;
using udp = boost::asio::ip::udp;
} // namespace

BackendSession::BackendSession(boost::asio::io_context& io, uint64_t id, std::string agent,
                               const Services& services, ConnectorCounters& counters)
    : io_(io), id_(id), agent_(std::move(agent)), services_(services), counters_(counters) {}

BackendSession::~BackendSession() {
  *alive_ = false;
}

void BackendSession::on_handshake_completed() {
  auto& conn = quic_->conn();
  // Zero trust: the certificate must be the agent the intermediate authorized for this session.
  if (conn.peer_name() != agent_) {
    counters_.sessions_wrong_agent++;
    spdlog::warn(
        "session {:016x}: certificate is '{}' but the session was offered to '{}'; closing", id_,
        conn.peer_name(), agent_);
    quic_->close(static_cast<uint64_t>(wire::StreamError::Internal), "wrong agent identity");
    return;
  }
  spdlog::info("session {:016x}: end-to-end handshake with agent '{}' complete", id_, agent_);
}

void BackendSession::on_stream_open(int64_t stream_id) {
  pending_.try_emplace(stream_id);
}

void BackendSession::on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) {
  if (auto it = splices_.find(stream_id); it != splices_.end()) {
    it->second->on_stream_data(data, fin);
    return;
  }
  auto it = pending_.find(stream_id);
  if (it == pending_.end()) return; // rejected already; late data is ignored
  auto& p = it->second;
  if (p.header.state() == wire::StreamHeaderDecoder::State::Done) {
    // Waiting for the backend: hold the bytes (bounded by the stream's flow-control window).
    p.early.insert(p.early.end(), data.begin(), data.end());
    p.fin = p.fin || fin;
    return;
  }
  size_t used = 0;
  auto state = p.header.feed(data, used);
  quic_->conn().consume(stream_id, used);
  if (state == wire::StreamHeaderDecoder::State::Malformed) {
    counters_.streams_malformed++;
    spdlog::warn("session {:016x}: stream {}: bad header: {}", id_, stream_id, p.header.error());
    return reject_stream(stream_id, wire::StreamError::MalformedHeader);
  }
  if (state == wire::StreamHeaderDecoder::State::NeedMore) {
    if (fin) reject_stream(stream_id, wire::StreamError::MalformedHeader);
    return;
  }
  p.early.insert(p.early.end(), data.begin() + static_cast<ptrdiff_t>(used), data.end());
  p.fin = fin;
  on_header(stream_id, p);
}

void BackendSession::on_header(int64_t stream_id, PendingStream& p) {
  auto svc = services_.find(p.header.service());
  if (svc == services_.end() || svc->second.proto != ServiceSpec::Proto::Tcp) {
    counters_.unknown_service++;
    spdlog::warn("session {:016x}: agent '{}' asked for unknown tcp service '{}'", id_, agent_,
                 p.header.service());
    return reject_stream(stream_id, wire::StreamError::UnknownService);
  }
  connect_backend(stream_id, svc->second);
}

void BackendSession::connect_backend(int64_t stream_id, const ServiceSpec& spec) {
  auto resolver = std::make_shared<tcp::resolver>(io_);
  auto socket = std::make_shared<tcp::socket>(io_);
  resolver->async_resolve(
      spec.host, std::to_string(spec.port),
      [this, alive = alive_, resolver, socket, stream_id, spec](boost::system::error_code ec,
                                                                tcp::resolver::results_type r) {
        if (!*alive) return;
        auto fail = [&](const std::string& what) {
          counters_.backend_connect_failures++;
          spdlog::warn("session {:016x}: service '{}': backend {} {}", id_, spec.name,
                       spec.endpoint(), what);
          reject_stream(stream_id, wire::StreamError::BackendRefused);
        };
        if (ec) return fail("does not resolve: " + ec.message());
        boost::asio::async_connect(
            *socket, r,
            [this, alive, socket, stream_id, spec, fail](boost::system::error_code ec2,
                                                         const tcp::endpoint&) {
              if (!*alive) return;
              auto it = pending_.find(stream_id);
              if (it == pending_.end()) return; // the agent gave up meanwhile
              if (ec2) {
                counters_.backend_connect_failures++;
                spdlog::warn("session {:016x}: service '{}': backend {} refused: {}", id_,
                             spec.name, spec.endpoint(), ec2.message());
                return reject_stream(stream_id, wire::StreamError::BackendRefused);
              }
              counters_.streams_opened++;
              spdlog::debug("session {:016x}: stream {} -> '{}' ({})", id_, stream_id, spec.name,
                            spec.endpoint());
              auto splice = std::make_unique<io::TcpSplice>(
                  *quic_, stream_id, [this](int64_t id) { splices_.erase(id); });
              auto early = std::move(it->second.early);
              bool fin = it->second.fin;
              pending_.erase(it);
              auto* s = splice.get();
              splices_.emplace(stream_id, std::move(splice));
              s->on_stream_data(early, fin);
              s->attach(std::move(*socket));
            });
      });
}

void BackendSession::reject_stream(int64_t stream_id, wire::StreamError why) {
  pending_.erase(stream_id);
  quic_->conn().reset(stream_id, static_cast<uint64_t>(why));
  quic_->schedule_flush();
}

void BackendSession::on_stream_reset(int64_t stream_id, uint64_t app_error) {
  pending_.erase(stream_id);
  if (auto it = splices_.find(stream_id); it != splices_.end())
    it->second->on_stream_reset(app_error);
}

void BackendSession::on_stream_closed(int64_t stream_id) {
  pending_.erase(stream_id);
  if (auto it = splices_.find(stream_id); it != splices_.end()) it->second->on_stream_closed();
}

void BackendSession::on_stream_writable(int64_t stream_id) {
  if (auto it = splices_.find(stream_id); it != splices_.end()) it->second->on_stream_writable();
}

void BackendSession::on_datagram(std::span<const uint8_t> data) {
  if (auto ping = wire::parse_ping(data)) {
    // Echoed on the current path: the agent learns which path answers (ztna-agent ping).
    if (!ping->pong && quic_) {
      quic_->conn().send_datagram(wire::encode_ping(true, ping->id));
      quic_->schedule_flush();
    }
    return;
  }
  auto d = wire::parse_datagram(data);
  if (!d) {
    counters_.datagrams_malformed++;
    return;
  }
  auto flow = flows_.find(d->flow_id);
  if (flow == flows_.end()) {
    auto svc = services_.find(std::string(d->service));
    if (svc == services_.end() || svc->second.proto != ServiceSpec::Proto::Udp) {
      counters_.unknown_service++;
      spdlog::warn("session {:016x}: agent '{}' sent a datagram for unknown udp service '{}'", id_,
                   agent_, d->service);
      return;
    }
    if (flows_.size() >= kMaxUdpFlows) {
      counters_.datagrams_dropped++;
      return;
    }
    auto target = Address::resolve(svc->second.endpoint());
    if (!target) {
      counters_.backend_connect_failures++;
      spdlog::warn("session {:016x}: udp backend {} does not resolve", id_, svc->second.endpoint());
      return;
    }
    UdpFlow f;
    f.socket = std::make_unique<udp::socket>(io_);
    boost::system::error_code ec;
    udp::endpoint ep;
    ep.resize(target->len());
    std::memcpy(ep.data(), target->sa(), target->len());
    f.socket->open(ep.protocol(), ec);
    if (!ec) f.socket->connect(ep, ec);
    if (ec) {
      counters_.backend_connect_failures++;
      spdlog::warn("session {:016x}: udp backend {}: {}", id_, svc->second.endpoint(),
                   ec.message());
      return;
    }
    f.service = svc->second.name;
    f.buf.resize(65536);
    flow = flows_.emplace(d->flow_id, std::move(f)).first;
    counters_.udp_flows_opened++;
    spdlog::debug("session {:016x}: udp flow {} -> '{}'", id_, d->flow_id, flow->second.service);
    receive_udp(d->flow_id);
  }
  flow->second.last_used = std::chrono::steady_clock::now();
  boost::system::error_code ec;
  flow->second.socket->send(boost::asio::buffer(d->payload.data(), d->payload.size()), 0, ec);
  if (ec) counters_.datagrams_dropped++;
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
      auto dg = wire::encode_datagram(flow_id, it->second.service, {it->second.buf.data(), n});
      if (!quic_->conn().send_datagram(dg)) counters_.datagrams_dropped++;
      quic_->schedule_flush();
    }
    // ICMP port unreachable surfaces as an error here; the flow stays for later replies.
    receive_udp(flow_id);
  });
}

void BackendSession::expire_flows(std::chrono::steady_clock::time_point now,
                                  std::chrono::seconds idle) {
  for (auto it = flows_.begin(); it != flows_.end();)
    it = now - it->second.last_used > idle ? flows_.erase(it) : std::next(it);
}

} // namespace ztna
