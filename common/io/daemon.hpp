// What every daemon's main does the same way: logging and termination signals.
#pragma once

#include <boost/asio.hpp>

#include <functional>
#include <string>

namespace ztna::io {

// Logs go to stderr (journald picks them up under systemd). Throws on an unknown level.
void setup_logging(const std::string& level, const std::string& daemon_name);

// Calls `on_stop` once on SIGTERM or SIGINT. The signal set lives as long as `io`.
void on_termination(boost::asio::io_context& io, std::function<void(int signal)> on_stop);

// Calls `on_hup` on every SIGHUP, from the event loop. The signal set lives as long as `io`.
void on_reload(boost::asio::io_context& io, std::function<void()> on_hup);

} // namespace ztna::io
