// The `status` subcommand shared by the three daemons.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace ztna::io {

// Fetches the status document and prints it as JSON or through `human`. Returns the exit code.
int run_status_command(const std::string& socket_path, bool json,
                       const std::function<void(const nlohmann::json&)>& human);

// "12.3 MiB" style sizes for human-readable output.
std::string human_bytes(uint64_t bytes);

// "0.73 ms": two decimals, below the jitter of any real path.
std::string human_ms(double ms);

} // namespace ztna::io
