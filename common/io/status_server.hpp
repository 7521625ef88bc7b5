// The daemon's local control socket (Unix, owner and group only). A client connects, writes one
// request line and reads the answer to EOF:
//   "status\n"          -> the daemon's state as one JSON document
//   anything else       -> handed to the daemon's request handler (e.g. the agent's "ping web"),
//                          whose answer may come later (it may wait for the network)
#pragma once

#include <boost/asio.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace ztna::io {

class StatusServer {
public:
  using Reply = std::function<void(std::string answer)>;
  // Gets the request line without its newline; must call `reply` exactly once, now or later.
  using Handler = std::function<void(const std::string& request, Reply reply)>;
  static constexpr size_t kMaxRequest = 512;

  // Creates the socket's directory if missing and replaces a stale socket file.
  // Throws std::runtime_error naming the path on failure.
  StatusServer(boost::asio::io_context& io, std::string path, Handler handler);
  ~StatusServer();
  const std::string& path() const { return path_; }

private:
  void accept();

  std::string path_;
  Handler handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Sends `request` to the daemon at `path` and reads its answer; nullopt with `error` set if
// nobody answers.
std::optional<std::string> query_daemon(const std::string& path, const std::string& request,
                                        std::string& error);
inline std::optional<std::string> fetch_status(const std::string& path, std::string& error) {
  return query_daemon(path, "status", error);
}

} // namespace ztna::io
