#include "io/status_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

namespace ztna::io {

using boost::asio::local::stream_protocol;

StatusServer::StatusServer(boost::asio::io_context& io, std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)), acceptor_(io) {
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

StatusServer::~StatusServer() {
  *alive_ = false;
  ::unlink(path_.c_str());
}

namespace {

// One client: read a request line (bounded in size and time), answer, close.
struct StatusClient : std::enable_shared_from_this<StatusClient> {
  StatusClient(stream_protocol::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}
  stream_protocol::socket socket;
  boost::asio::steady_timer deadline;
  std::string request;

  void write(std::string answer) {
    auto self = shared_from_this();
    auto body = std::make_shared<std::string>(std::move(answer));
    boost::asio::async_write(
        socket, boost::asio::buffer(*body), [self, body](boost::system::error_code, size_t) {
          boost::system::error_code ignored;
          self->socket.shutdown(stream_protocol::socket::shutdown_send, ignored);
        });
  }
};

} // namespace

void StatusServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket sock) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec) {
      auto c = std::make_shared<StatusClient>(std::move(sock));
      // A client that never sends its line is dropped after 5 s.
      c->deadline.expires_after(std::chrono::seconds(5));
      c->deadline.async_wait([c](boost::system::error_code e) {
        if (!e && c->request.find('\n') == std::string::npos) c->socket.close();
      });
      boost::asio::async_read_until(
          c->socket, boost::asio::dynamic_buffer(c->request, kMaxRequest), '\n',
          [this, c, alive = alive_](boost::system::error_code e, size_t n) {
            c->deadline.cancel();
            if (!*alive) return;
            if (e) {
              c->write("{\"error\":\"expected one request line of at most 512 bytes\"}\n");
              return;
            }
            std::string line = c->request.substr(0, n - 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            handler_(line, [c](std::string answer) { c->write(std::move(answer)); });
          });
    }
    accept();
  });
}

std::optional<std::string> query_daemon(const std::string& path, const std::string& request,
                                        std::string& error) {
  boost::asio::io_context io;
  stream_protocol::socket s(io);
  boost::system::error_code ec;
  s.connect(stream_protocol::endpoint(path), ec);
  if (ec) {
    error = "cannot reach status socket " + path + ": " + ec.message() +
            " (is the daemon running? is --status-socket the same?)";
    return std::nullopt;
  }
  boost::asio::write(s, boost::asio::buffer(request + "\n"), ec);
  std::string out;
  if (!ec) boost::asio::read(s, boost::asio::dynamic_buffer(out), ec);
  if (ec && ec != boost::asio::error::eof) {
    error = "reading " + path + ": " + ec.message();
    return std::nullopt;
  }
  return out;
}

} // namespace ztna::io
