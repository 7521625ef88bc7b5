// JSON text that never throws. Strings in status documents and replies can hold bytes from
// outside (a peer's close reason, a request line on the status socket, a file name); nlohmann's
// dump() throws on invalid UTF-8, which would end the daemon. Here such bytes become U+FFFD.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace ztna::io {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace ztna::io
