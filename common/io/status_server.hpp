// Serves the daemon's state as JSON on a local Unix socket: connect, read to EOF.
#pragma once

#include <boost/asio.hpp>

#include <functional>
#include <optional>
#include <string>

namespace ztna::io {

class StatusServer {
public:
  using Provider = std::function<std::string()>;
  // Creates the socket's directory if missing and replaces a stale socket file.
  // Throws std::runtime_error naming the path on failure.
  StatusServer(boost::asio::io_context& io, std::string path, Provider provider);
  ~StatusServer();
  const std::string& path() const { return path_; }

private:
  void accept();

  std::string path_;
  Provider provider_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
};

// Reads one status document from `path`; nullopt with `error` set if nobody answers.
std::optional<std::string> fetch_status(const std::string& path, std::string& error);

} // namespace ztna::io
