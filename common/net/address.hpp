// A UDP/TCP socket address (IPv4 or IPv6) as a plain value type.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ztna {

class Address {
public:
  Address() = default;
  static Address from_sockaddr(const sockaddr* sa, socklen_t len);
  static Address ipv4(uint32_t host_order_ip, uint16_t port);
  // Parses "1.2.3.4:5", "[::1]:5". Returns nullopt on anything else (no DNS).
  static std::optional<Address> parse(std::string_view text);
  // Like parse(), but also resolves a host name ("host:port") with getaddrinfo.
  static std::optional<Address> resolve(std::string_view text);
  // Every address a "host:port" names (each once, in the resolver's order); one for an IP.
  static std::vector<Address> resolve_all(std::string_view text);

  bool empty() const { return len_ == 0; }
  bool is_v6() const { return storage_.ss_family == AF_INET6; }
  uint16_t port() const;
  void set_port(uint16_t port);
  // The IP without the port: 4 bytes for IPv4, 16 for IPv6.
  std::string ip_bytes() const;
  std::string ip_string() const;
  std::string to_string() const;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t len() const { return len_; }
  void set_len(socklen_t len) { len_ = len; }

  friend bool operator==(const Address& a, const Address& b);

private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

struct AddressHash {
  size_t operator()(const Address& a) const;
};

} // namespace ztna
