#include "net/address.hpp"

#include <algorithm>

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cstring>

namespace ztna {

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Address a;
  if (len > sizeof(a.storage_)) len = sizeof(a.storage_);
  std::memcpy(&a.storage_, sa, len);
  a.len_ = len;
  return a;
}

Address Address::ipv4(uint32_t host_order_ip, uint16_t port) {
  Address a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage_);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(host_order_ip);
  in->sin_port = htons(port);
  a.len_ = sizeof(sockaddr_in);
  return a;
}

static std::optional<uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

// Splits "host:port" or "[v6]:port" into host and port text.
static bool split_host_port(std::string_view text, std::string& host, std::string_view& port) {
  // inet_pton and getaddrinfo stop at a NUL, so "1.2.3.4\0junk:80" would parse as 1.2.3.4:80.
  if (text.find('\0') != std::string_view::npos) return false;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return false;
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    return true;
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || text.find(':') != colon) return false;
  host = std::string(text.substr(0, colon));
  port = text.substr(colon + 1);
  return !host.empty();
}

std::optional<Address> Address::parse(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (!split_host_port(text, host, port_text)) return std::nullopt;
  auto port = parse_port(port_text);
  if (!port) return std::nullopt;
  Address a;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(*port);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(*port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

std::optional<Address> Address::resolve(std::string_view text) {
  if (auto a = parse(text)) return a;
  std::string host;
  std::string_view port_text;
  if (!split_host_port(text, host, port_text) || !parse_port(port_text)) return std::nullopt;
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::string(port_text).c_str(), &hints, &res) != 0 || !res)
    return std::nullopt;
  auto a = from_sockaddr(res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return a;
}

std::vector<Address> Address::resolve_all(std::string_view text) {
  if (auto a = parse(text)) return {*a};
  std::string host;
  std::string_view port_text;
  if (!split_host_port(text, host, port_text) || !parse_port(port_text)) return {};
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::string(port_text).c_str(), &hints, &res) != 0) return {};
  std::vector<Address> out;
  for (auto* r = res; r; r = r->ai_next) {
    auto a = from_sockaddr(r->ai_addr, r->ai_addrlen);
    if (!a.empty() && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  freeaddrinfo(res);
  return out;
}

uint16_t Address::port() const {
  if (storage_.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (storage_.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

void Address::set_port(uint16_t port) {
  if (storage_.ss_family == AF_INET)
    reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  else if (storage_.ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
}

std::string Address::ip_bytes() const {
  if (storage_.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&storage_);
    return std::string(reinterpret_cast<const char*>(&in->sin_addr), 4);
  }
  if (storage_.ss_family == AF_INET6) {
    auto* in = reinterpret_cast<const sockaddr_in6*>(&storage_);
    return std::string(reinterpret_cast<const char*>(&in->sin6_addr), 16);
  }
  return {};
}

std::string Address::ip_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage_.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
  else if (storage_.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
              sizeof buf);
  else
    return "-";
  return buf;
}

std::string Address::to_string() const {
  if (empty()) return "-";
  // Built by appending: GCC 12 at -O3 raises a false -Wrestrict on "[" + std::string.
  std::string out;
  if (is_v6()) out += '[';
  out += ip_string();
  if (is_v6()) out += ']';
  out += ':';
  out += std::to_string(port());
  return out;
}

bool operator==(const Address& a, const Address& b) {
  // Hot path (every relayed packet): no allocation.
  if (a.storage_.ss_family != b.storage_.ss_family) return false;
  if (a.storage_.ss_family == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage_);
    auto* y = reinterpret_cast<const sockaddr_in*>(&b.storage_);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.storage_.ss_family == AF_INET6) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage_);
    auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage_);
    return x->sin6_port == y->sin6_port &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return a.len_ == b.len_;
}

size_t AddressHash::operator()(const Address& a) const {
  return std::hash<std::string>{}(a.ip_bytes()) ^ (size_t{a.port()} << 1);
}

} // namespace ztna
