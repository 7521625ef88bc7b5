// etcd's v3 API through its JSON gateway (etcd 3.4: POST /v3/kv/put, /v3/kv/range,
// /v3/kv/deleterange, /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke, /v3/watch),
// sans-IO: the request bodies we send and the parsing of what comes back (DESIGN D11).
//
// Keys and values travel base64-encoded; 64-bit numbers travel as JSON strings (proto3 JSON).
// What comes back is treated as untrusted bytes: bounded, checked, never trusted to be well
// formed (fuzz/fuzz_etcd_codec.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ztna::store {

// A response body larger than this is refused (a range over our own prefix stays far below).
constexpr size_t kMaxResponse = 4 << 20;
// One message of a watch stream; longer ones fail the stream.
constexpr size_t kMaxWatchMessage = 1 << 20;

struct KeyValue {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;
  int64_t lease = 0;
  bool operator==(const KeyValue&) const = default;
};

// The end of the range of every key that starts with `prefix` (etcd's "range_end").
std::string prefix_end(std::string_view prefix);

std::string encode_put(std::string_view key, std::string_view value, int64_t lease = 0);
std::string encode_range(std::string_view key, std::string_view range_end = {});
std::string encode_delete(std::string_view key, std::string_view range_end = {});
std::string encode_lease_grant(int64_t ttl_seconds);
std::string encode_lease_keepalive(int64_t lease);
std::string encode_lease_revoke(int64_t lease);
// Watch every key from `key` to `range_end`, from `start_revision` on (0: from now).
std::string encode_watch_create(std::string_view key, std::string_view range_end,
                                int64_t start_revision);

// The store's revision after the request, from any response's header.
struct Header {
  int64_t revision = 0;
};
struct RangeResult {
  Header header;
  std::vector<KeyValue> kvs;
};
struct LeaseGrant {
  int64_t id = 0;
  int64_t ttl = 0; // seconds
};

// Each returns nullopt and one line in `error` for a body that is not what etcd sends: not
// JSON, an error object ({"error": ..., "code": ...}), a missing or malformed field.
std::optional<Header> parse_header(std::string_view body, std::string& error);
std::optional<RangeResult> parse_range(std::string_view body, std::string& error);
std::optional<LeaseGrant> parse_lease_grant(std::string_view body, std::string& error);
// A keepalive answer: the lease's remaining TTL (seconds); 0 means the lease is gone.
std::optional<int64_t> parse_lease_keepalive(std::string_view body, std::string& error);

struct WatchEvent {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  KeyValue kv;
  bool operator==(const WatchEvent&) const = default;
};
struct WatchMessage {
  Header header;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0; // the start revision was compacted away: read again
  std::vector<WatchEvent> events;
};

// The body of a watch is a stream of JSON objects, one per line ({"result": {...}}), sent as
// they happen. Feed it the bytes as they arrive; it yields whole messages. Fails (and stays
// failed) on a message that does not parse or is longer than kMaxWatchMessage.
class WatchDecoder {
public:
  bool feed(std::span<const uint8_t> bytes, std::vector<WatchMessage>& out);
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  size_t buffered() const { return buf_.size(); }

private:
  bool parse_line(std::string_view line, std::vector<WatchMessage>& out);
  std::string buf_;
  std::string error_;
};

} // namespace ztna::store
