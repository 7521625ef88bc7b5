// "NAME=tcp://HOST:PORT" / "NAME=udp://HOST:PORT": a service a connector publishes, or a
// local listener an agent exposes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ztna {

struct ServiceSpec {
  enum class Proto { Tcp, Udp };
  std::string name;
  Proto proto = Proto::Tcp;
  std::string host;
  uint16_t port = 0;

  const char* proto_name() const { return proto == Proto::Tcp ? "tcp" : "udp"; }
  std::string endpoint() const; // "host:port" ("[v6]:port" for IPv6 literals)
};

// Returns nullopt and a one-line reason in `error` if `text` is not a valid spec.
std::optional<ServiceSpec> parse_service_spec(std::string_view text, std::string& error);

} // namespace ztna
