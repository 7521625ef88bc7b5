// The default gateway: where PCP (RFC 6887 §8.1) and NAT-PMP (RFC 6886 §3) requests go. Linux
// lists the IPv4 routes of the caller's network namespace in /proc/net/route; the I/O shell reads
// the file and this parses it, so the parsing is tested without a machine's routes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ztna::portmap {

struct DefaultRoute {
  uint32_t gateway = 0; // IPv4, host order
  std::string interface;
  uint32_t metric = 0;
};

// The default route (destination and mask 0.0.0.0, flags up and gateway) with the lowest metric,
// the first one among equals; nullopt if there is none. Malformed lines are skipped.
std::optional<DefaultRoute> default_route(std::string_view proc_net_route);

} // namespace ztna::portmap
