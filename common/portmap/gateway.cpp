#include "portmap/gateway.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <vector>

namespace ztna::portmap {

namespace {

constexpr uint32_t kRouteUp = 0x1;      // RTF_UP
constexpr uint32_t kRouteGateway = 0x2; // RTF_GATEWAY

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
      ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t')
      ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::optional<uint32_t> number(std::string_view s, int base) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

} // namespace

std::optional<DefaultRoute> default_route(std::string_view text) {
  std::optional<DefaultRoute> best;
  bool header = true;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (header) { // "Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT"
      header = false;
      continue;
    }
    auto f = fields(line);
    if (f.size() < 8) continue;
    auto dest = number(f[1], 16), gw = number(f[2], 16), flags = number(f[3], 16);
    auto metric = number(f[6], 10), mask = number(f[7], 16);
    if (!dest || !gw || !flags || !metric || !mask) continue;
    if (*dest != 0 || *mask != 0 || *gw == 0) continue;
    if ((*flags & (kRouteUp | kRouteGateway)) != (kRouteUp | kRouteGateway)) continue;
    // The kernel prints the address as the 32-bit number it holds in network byte order.
    if (!best || *metric < best->metric)
      best = DefaultRoute{ntohl(*gw), std::string(f[0]), *metric};
  }
  return best;
}

} // namespace ztna::portmap
