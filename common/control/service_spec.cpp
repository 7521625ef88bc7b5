#include "control/service_spec.hpp"

#include <charconv>

namespace ztna {

std::string ServiceSpec::endpoint() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

// The input as it may appear in a one-line message: control bytes become \xNN.
std::string printable(std::string_view text) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

} // namespace

std::optional<ServiceSpec> parse_service_spec(std::string_view text, std::string& error) {
  auto fail = [&](std::string why) -> std::optional<ServiceSpec> {
    error = "'" + printable(text) + "': " + why +
            " (expected NAME=tcp://HOST:PORT or NAME=udp://HOST:PORT)";
    return std::nullopt;
  };
  auto eq = text.find('=');
  if (eq == std::string_view::npos) return fail("missing '=' after the service name");
  if (eq == 0) return fail("missing service name");
  ServiceSpec spec;
  spec.name = std::string(text.substr(0, eq));
  if (spec.name.size() > 255) return fail("service name longer than 255 bytes");
  for (unsigned char c : spec.name)
    if (c <= 0x20 || c == 0x7f) return fail("service name has a space or control character");
  auto rest = text.substr(eq + 1);
  if (rest.starts_with("tcp://")) {
    spec.proto = ServiceSpec::Proto::Tcp;
  } else if (rest.starts_with("udp://")) {
    spec.proto = ServiceSpec::Proto::Udp;
  } else {
    return fail("protocol must be tcp:// or udp://");
  }
  rest.remove_prefix(6);
  std::string_view host, port;
  if (rest.starts_with("[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos || rest.substr(close + 1, 1) != ":")
      return fail("bad IPv6 address");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return fail("missing port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return fail("IPv6 addresses need [brackets]");
  }
  if (host.empty()) return fail("missing host");
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535)
    return fail("port must be 1-65535");
  spec.host = std::string(host);
  spec.port = static_cast<uint16_t>(p);
  return spec;
}

} // namespace ztna
