#include "io/daemon.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <stdexcept>

namespace ztna::io {

void setup_logging(const std::string& level, const std::string& daemon_name) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    throw std::runtime_error("unknown log level '" + level + "' (trace|debug|info|warn|error)");
  auto logger = spdlog::stderr_color_mt(daemon_name);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %n: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
}

void on_termination(boost::asio::io_context& io, std::function<void(int)> on_stop) {
  auto signals = std::make_shared<boost::asio::signal_set>(io, SIGTERM, SIGINT);
  signals->async_wait([signals, on_stop](boost::system::error_code ec, int sig) {
    if (!ec) on_stop(sig);
  });
}

namespace {
void wait_for_hup(std::shared_ptr<boost::asio::signal_set> signals, std::function<void()> on_hup) {
  signals->async_wait([signals, on_hup](boost::system::error_code ec, int) {
    if (ec) return;
    on_hup();
    wait_for_hup(signals, on_hup);
  });
}
} // namespace

void on_reload(boost::asio::io_context& io, std::function<void()> on_hup) {
  wait_for_hup(std::make_shared<boost::asio::signal_set>(io, SIGHUP), std::move(on_hup));
}

} // namespace ztna::io
