// JSON text that never throws. Strings in status documents and replies can hold bytes from
// outside (a peer's close reason, a request line on the status socket, a file name); nlohmann's
// dump() throws on invalid UTF-8, which would end the daemon. Here such bytes become U+FFFD.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace ztna::io {

// A template so that ordered_json keeps its key order (a conversion to json would sort the
// keys); a braced list is not deduced and takes the default, json.
template <class Json = nlohmann::json> std::string json_text(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

} // namespace ztna::io
