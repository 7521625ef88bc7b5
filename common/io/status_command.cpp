#include "io/status_command.hpp"

#include "io/status_server.hpp"

#include <cstdio>
#include <iostream>

namespace ztna::io {

int run_status_command(const std::string& socket_path, bool json,
                       const std::function<void(const nlohmann::json&)>& human) {
  std::string error;
  auto text = fetch_status(socket_path, error);
  if (!text) {
    std::cerr << "error: " << error << "\n";
    return 1;
  }
  auto doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded()) {
    std::cerr << "error: status socket " << socket_path << " returned malformed JSON\n";
    return 1;
  }
  if (json) {
    std::cout << doc.dump(2) << "\n";
  } else {
    human(doc);
  }
  return 0;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string human_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", ms);
  return buf;
}

} // namespace ztna::io
