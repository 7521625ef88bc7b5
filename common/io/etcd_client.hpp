// A client of etcd's v3 JSON gateway over HTTP/1.1 (Boost.Beast), on the daemon's event loop
// (DESIGN D11). It only moves bytes: what to send and what the answers mean is
// store::ClusterState's (common/store), with the codec in common/store/etcd_codec.
//
// Calls go one at a time over one kept-alive connection. A call that fails (connect refused, no
// answer within the timeout, a closed connection) is tried on the next endpoint of the list, once
// per endpoint, before it fails; the endpoint that answered stays in use. The one watch has a
// connection of its own to the endpoint in use, and streams until it is replaced or stops.
#pragma once

#include <boost/asio.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ztna::io {

class EtcdClient {
public:
  struct Endpoint {
    std::string host, port;
    std::string to_string() const;
  };
  // Parses "host:port" or "[v6]:port"; throws std::invalid_argument naming what is wrong.
  static Endpoint parse_endpoint(const std::string& text);

  // The answer's body, or why the call failed (one line; an etcd error's JSON body included).
  using Done = std::function<void(std::string_view body, const std::string& error)>;
  using Bytes = std::function<void(std::span<const uint8_t> bytes)>;
  using End = std::function<void(const std::string& why)>;

  EtcdClient(boost::asio::io_context& io, std::vector<Endpoint> endpoints,
             std::chrono::milliseconds timeout);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POST `path` with the JSON `body`; `done` runs once, later, from the event loop.
  void call(std::string path, std::string body, Done done);
  // POST /v3/watch with `body` on a connection of its own, replacing the watch before it (whose
  // callbacks are not called again). `on_bytes` gets the response body as it streams in,
  // `on_end` runs once when the stream ends for any reason other than replace or stop.
  void watch(std::string body, Bytes on_bytes, End on_end);
  void stop();

  std::string endpoint() const { return endpoints_[current_].to_string(); }

private:
  struct Call {
    std::string path, body;
    Done done;
    size_t attempts = 0;
  };
  struct Connection;
  struct Watch;

  void next();
  void send(std::shared_ptr<Connection> c);
  void finish(const std::string& body, const std::string& error);

  boost::asio::io_context& io_;
  std::vector<Endpoint> endpoints_;
  std::chrono::milliseconds timeout_;
  size_t current_ = 0;
  std::deque<Call> queue_;
  bool busy_ = false;
  std::shared_ptr<Connection> connection_; // kept alive between calls
  std::shared_ptr<Watch> watch_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ztna::io
