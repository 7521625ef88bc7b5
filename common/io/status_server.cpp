#include "io/status_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

namespace ztna::io {

using boost::asio::local::stream_protocol;

StatusServer::StatusServer(boost::asio::io_context& io, std::string path, Provider provider)
    : path_(std::move(path)), provider_(std::move(provider)), acceptor_(io) {
  std::error_code fec;
  auto dir = std::filesystem::path(path_).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, fec);
  ::unlink(path_.c_str());
  boost::system::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(path_), ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) throw std::runtime_error("status socket " + path_ + ": " + ec.message());
  // Status names identities and addresses: owner and group only.
  ::chmod(path_.c_str(), 0660);
  accept();
}

StatusServer::~StatusServer() { ::unlink(path_.c_str()); }

void StatusServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket sock) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec) {
      auto s = std::make_shared<stream_protocol::socket>(std::move(sock));
      auto body = std::make_shared<std::string>(provider_());
      boost::asio::async_write(*s, boost::asio::buffer(*body),
                               [s, body](boost::system::error_code, size_t) {});
    }
    accept();
  });
}

std::optional<std::string> fetch_status(const std::string& path, std::string& error) {
  boost::asio::io_context io;
  stream_protocol::socket s(io);
  boost::system::error_code ec;
  s.connect(stream_protocol::endpoint(path), ec);
  if (ec) {
    error = "cannot reach status socket " + path + ": " + ec.message() +
            " (is the daemon running? is --status-socket the same?)";
    return std::nullopt;
  }
  std::string out;
  boost::asio::read(s, boost::asio::dynamic_buffer(out), ec);
  if (ec && ec != boost::asio::error::eof) {
    error = "reading " + path + ": " + ec.message();
    return std::nullopt;
  }
  return out;
}

} // namespace ztna::io
