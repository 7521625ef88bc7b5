#include "io/etcd_client.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <optional>
#include <stdexcept>

namespace ztna::io {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

// An answer larger than this fails the call (a range over our own prefix stays far below).
constexpr uint64_t kMaxBody = 4 << 20;

http::request<http::string_body> post(const EtcdClient::Endpoint& ep, const std::string& path,
                                      std::string body) {
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, ep.host + ":" + ep.port);
  req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

std::string http_error(unsigned status, std::string_view body) {
  std::string s = "HTTP " + std::to_string(status);
  if (!body.empty()) s += ": " + std::string(body.substr(0, 300));
  return s;
}

} // namespace

namespace {
// What a call connection and a watch both hold: the TCP stream and the request on it.
struct HttpLink {
  explicit HttpLink(boost::asio::io_context& io) : stream(io), resolver(io) {}
  beast::tcp_stream stream;
  tcp::resolver resolver;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
};
} // namespace

struct EtcdClient::Connection : HttpLink {
  using HttpLink::HttpLink;
  std::optional<http::response_parser<http::string_body>> parser;
  size_t endpoint = 0;
  bool connected = false;
};

struct EtcdClient::Watch : HttpLink {
  using HttpLink::HttpLink;
  http::response_parser<http::buffer_body> parser;
  std::array<char, 16384> chunk{};
  Bytes on_bytes;
  End on_end;
  bool done = false; // replaced, stopped or ended: no callback any more

  void end(const std::string& why) {
    if (done) return;
    done = true;
    beast::error_code ignored;
    stream.socket().close(ignored);
    auto cb = std::move(on_end);
    if (cb) cb(why);
  }
  void read_body(std::shared_ptr<Watch> self) {
    auto& body = parser.get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    http::async_read_some(stream, buffer, parser, [self](beast::error_code ec, size_t) {
      if (self->done) return;
      if (ec == http::error::need_buffer) ec = {};
      const size_t got = self->chunk.size() - self->parser.get().body().size;
      if (got) self->on_bytes({reinterpret_cast<const uint8_t*>(self->chunk.data()), got});
      if (self->done) return;
      if (ec) return self->end("watch connection: " + ec.message());
      if (self->parser.is_done()) return self->end("etcd ended the watch");
      self->read_body(self);
    });
  }
};

std::string EtcdClient::Endpoint::to_string() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

EtcdClient::Endpoint EtcdClient::parse_endpoint(const std::string& text) {
  std::string s = text;
  for (const char* scheme : {"http://", "https://"})
    if (s.rfind(scheme, 0) == 0) {
      if (scheme[4] == 's')
        throw std::invalid_argument("'" + text + "': TLS to etcd is not supported; use http://");
      s = s.substr(7);
    }
  Endpoint ep;
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size())
    throw std::invalid_argument("'" + text + "' is not HOST:PORT");
  ep.host = s.substr(0, colon);
  ep.port = s.substr(colon + 1);
  if (ep.host.size() >= 2 && ep.host.front() == '[' && ep.host.back() == ']')
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  if (ep.host.empty()) throw std::invalid_argument("'" + text + "' has no host");
  for (char c : ep.port)
    if (c < '0' || c > '9') throw std::invalid_argument("'" + text + "': bad port");
  return ep;
}

EtcdClient::EtcdClient(boost::asio::io_context& io, std::vector<Endpoint> endpoints,
                       std::chrono::milliseconds timeout)
    : io_(io), endpoints_(std::move(endpoints)), timeout_(timeout) {
  if (endpoints_.empty()) throw std::invalid_argument("no etcd endpoint");
}

EtcdClient::~EtcdClient() {
  stop();
}

void EtcdClient::stop() {
  *alive_ = false;
  if (connection_) {
    beast::error_code ignored;
    connection_->stream.socket().close(ignored);
    connection_.reset();
  }
  if (watch_) {
    watch_->on_end = nullptr;
    watch_->end("stopped");
    watch_.reset();
  }
  queue_.clear();
}

void EtcdClient::call(std::string path, std::string body, Done done) {
  if (!*alive_) return;
  queue_.push_back(Call{std::move(path), std::move(body), std::move(done)});
  next();
}

void EtcdClient::next() {
  if (busy_ || queue_.empty() || !*alive_) return;
  busy_ = true;
  if (connection_ && connection_->connected && connection_->endpoint == current_)
    return send(connection_);
  auto c = std::make_shared<Connection>(io_);
  c->endpoint = current_;
  connection_ = c;
  const Endpoint& ep = endpoints_[current_];
  c->stream.expires_after(timeout_);
  c->resolver.async_resolve(
      ep.host, ep.port,
      [this, c, alive = alive_](beast::error_code ec, tcp::resolver::results_type results) {
        if (!*alive || c != connection_) return;
        if (ec)
          return finish({}, "resolve " + endpoints_[c->endpoint].to_string() + ": " + ec.message());
        c->stream.async_connect(results, [this, c, alive](beast::error_code ec,
                                                          const tcp::endpoint&) {
          if (!*alive || c != connection_) return;
          if (ec)
            return finish({},
                          "connect " + endpoints_[c->endpoint].to_string() + ": " + ec.message());
          c->connected = true;
          send(c);
        });
      });
}

void EtcdClient::send(std::shared_ptr<Connection> c) {
  const Call& call = queue_.front();
  c->request = post(endpoints_[c->endpoint], call.path, call.body);
  c->parser.emplace();
  c->parser->body_limit(kMaxBody);
  c->buffer.clear();
  c->stream.expires_after(timeout_);
  http::async_write(c->stream, c->request, [this, c, alive = alive_](beast::error_code ec, size_t) {
    if (!*alive || c != connection_) return;
    if (ec) return finish({}, endpoints_[c->endpoint].to_string() + ": " + ec.message());
    http::async_read(
        c->stream, c->buffer, *c->parser, [this, c, alive](beast::error_code ec, size_t) {
          if (!*alive || c != connection_) return;
          if (ec) return finish({}, endpoints_[c->endpoint].to_string() + ": " + ec.message());
          auto& res = c->parser->get();
          if (!res.keep_alive()) c->connected = false;
          if (res.result() != http::status::ok)
            return finish({}, http_error(res.result_int(), res.body()));
          finish(res.body(), {});
        });
  });
}

// The front call is answered, or failed on the endpoint in use. A failure of the connection
// (not an answer from etcd) moves to the next endpoint and tries again there.
void EtcdClient::finish(const std::string& body, const std::string& error) {
  Call& call = queue_.front();
  const bool answered = error.empty() || error.rfind("HTTP ", 0) == 0;
  if (!answered) {
    beast::error_code ignored;
    connection_->stream.socket().close(ignored);
    connection_.reset();
    current_ = (current_ + 1) % endpoints_.size();
    // Once per endpoint, plus one: a kept-alive connection the server had closed fails first.
    if (++call.attempts <= endpoints_.size()) {
      busy_ = false;
      return next();
    }
  }
  Done done = std::move(call.done);
  queue_.pop_front();
  busy_ = false;
  auto alive = alive_;
  // A copy: `body` lives in the connection's parser, which the next call (made from `done`)
  // replaces.
  const std::string answer = body;
  done(answer, error);
  if (*alive) next();
}

void EtcdClient::watch(std::string body, Bytes on_bytes, End on_end) {
  if (watch_) {
    watch_->on_end = nullptr;
    watch_->end("replaced");
  }
  auto w = std::make_shared<Watch>(io_);
  watch_ = w;
  w->on_bytes = std::move(on_bytes);
  w->on_end = std::move(on_end);
  const Endpoint& ep = endpoints_[current_];
  w->request = post(ep, "/v3/watch", std::move(body));
  w->parser.body_limit(boost::none); // a stream: each message is bounded by the decoder
  w->stream.expires_after(timeout_);
  w->resolver.async_resolve(
      ep.host, ep.port,
      [w, name = ep.to_string()](beast::error_code ec, tcp::resolver::results_type results) {
        if (w->done) return;
        if (ec) return w->end("watch: resolve " + name + ": " + ec.message());
        w->stream.async_connect(results, [w, name](beast::error_code ec, const tcp::endpoint&) {
          if (w->done) return;
          if (ec) return w->end("watch: connect " + name + ": " + ec.message());
          http::async_write(w->stream, w->request, [w, name](beast::error_code ec, size_t) {
            if (w->done) return;
            if (ec) return w->end("watch: " + name + ": " + ec.message());
            http::async_read_header(w->stream, w->buffer, w->parser,
                                    [w, name](beast::error_code ec, size_t) {
                                      if (w->done) return;
                                      if (ec) return w->end("watch: " + name + ": " + ec.message());
                                      if (w->parser.get().result() != http::status::ok)
                                        return w->end("watch: " + name + ": HTTP " +
                                                      std::to_string(w->parser.get().result_int()));
                                      // Events come when they happen: no deadline from here on. A
                                      // dead etcd shows as a failed call on the other connection,
                                      // which replaces this watch.
                                      w->stream.expires_never();
                                      w->read_body(w);
                                    });
          });
        });
      });
}

} // namespace ztna::io
