#include "store/etcd_codec.hpp"

#include <gnutls/gnutls.h>
#include <nlohmann/json.hpp>

#include <charconv>

namespace ztna::store {

namespace {

using json = nlohmann::json;

std::string base64(std::string_view raw) {
  if (raw.empty()) return {};
  gnutls_datum_t in{reinterpret_cast<unsigned char*>(const_cast<char*>(raw.data())),
                    static_cast<unsigned>(raw.size())};
  gnutls_datum_t out{};
  if (gnutls_base64_encode2(&in, &out) != 0) throw std::bad_alloc();
  std::string s(reinterpret_cast<const char*>(out.data), out.size);
  gnutls_free(out.data);
  return s;
}

std::optional<std::string> unbase64(std::string_view text) {
  if (text.empty()) return std::string();
  gnutls_datum_t in{reinterpret_cast<unsigned char*>(const_cast<char*>(text.data())),
                    static_cast<unsigned>(text.size())};
  gnutls_datum_t out{};
  if (gnutls_base64_decode2(&in, &out) != 0) return std::nullopt;
  std::string s(reinterpret_cast<const char*>(out.data), out.size);
  gnutls_free(out.data);
  return s;
}

// proto3 JSON: int64 as a string ("12"); absent means 0.
bool get_int(const json& j, const char* field, int64_t& out) {
  out = 0;
  auto it = j.find(field);
  if (it == j.end()) return true;
  if (it->is_number_integer()) {
    out = it->get<int64_t>();
    return true;
  }
  if (!it->is_string()) return false;
  const auto& s = it->get_ref<const std::string&>();
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool get_bytes(const json& j, const char* field, std::string& out) {
  out.clear();
  auto it = j.find(field);
  if (it == j.end()) return true;
  if (!it->is_string()) return false;
  auto v = unbase64(it->get_ref<const std::string&>());
  if (!v) return false;
  out = std::move(*v);
  return true;
}

std::optional<json> parse_object(std::string_view body, std::string& error) {
  if (body.size() > kMaxResponse) {
    error = "response of " + std::to_string(body.size()) + " bytes";
    return std::nullopt;
  }
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  if (auto e = j.find("error"); e != j.end()) {
    error = "etcd: " + (e->is_string() ? e->get<std::string>() : e->dump());
    return std::nullopt;
  }
  return j;
}

bool read_header(const json& j, Header& h) {
  auto it = j.find("header");
  if (it == j.end() || !it->is_object()) return false;
  return get_int(*it, "revision", h.revision);
}

bool read_kv(const json& j, KeyValue& kv) {
  return j.is_object() && get_bytes(j, "key", kv.key) && get_bytes(j, "value", kv.value) &&
         get_int(j, "mod_revision", kv.mod_revision) && get_int(j, "lease", kv.lease);
}

} // namespace

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0'); // every key (etcd's convention)
}

std::string encode_put(std::string_view key, std::string_view value, int64_t lease) {
  json j{{"key", base64(key)}, {"value", base64(value)}};
  if (lease) j["lease"] = std::to_string(lease);
  return j.dump();
}

std::string encode_range(std::string_view key, std::string_view range_end) {
  json j{{"key", base64(key)}};
  if (!range_end.empty()) j["range_end"] = base64(range_end);
  return j.dump();
}

std::string encode_delete(std::string_view key, std::string_view range_end) {
  return encode_range(key, range_end);
}

std::string encode_lease_grant(int64_t ttl_seconds) {
  return json{{"TTL", std::to_string(ttl_seconds)}}.dump();
}

std::string encode_lease_keepalive(int64_t lease) {
  return json{{"ID", std::to_string(lease)}}.dump();
}

std::string encode_lease_revoke(int64_t lease) {
  return json{{"ID", std::to_string(lease)}}.dump();
}

std::string encode_watch_create(std::string_view key, std::string_view range_end,
                                int64_t start_revision) {
  json req{{"key", base64(key)}};
  if (!range_end.empty()) req["range_end"] = base64(range_end);
  if (start_revision) req["start_revision"] = std::to_string(start_revision);
  return json{{"create_request", std::move(req)}}.dump();
}

std::optional<Header> parse_header(std::string_view body, std::string& error) {
  auto j = parse_object(body, error);
  if (!j) return std::nullopt;
  Header h;
  if (!read_header(*j, h)) {
    error = "no header";
    return std::nullopt;
  }
  return h;
}

std::optional<RangeResult> parse_range(std::string_view body, std::string& error) {
  auto j = parse_object(body, error);
  if (!j) return std::nullopt;
  RangeResult r;
  if (!read_header(*j, r.header)) {
    error = "no header";
    return std::nullopt;
  }
  if (auto it = j->find("kvs"); it != j->end()) {
    if (!it->is_array()) {
      error = "kvs is not an array";
      return std::nullopt;
    }
    for (const auto& e : *it) {
      KeyValue kv;
      if (!read_kv(e, kv)) {
        error = "malformed key-value";
        return std::nullopt;
      }
      r.kvs.push_back(std::move(kv));
    }
  }
  return r;
}

std::optional<LeaseGrant> parse_lease_grant(std::string_view body, std::string& error) {
  auto j = parse_object(body, error);
  if (!j) return std::nullopt;
  LeaseGrant g;
  if (!get_int(*j, "ID", g.id) || !get_int(*j, "TTL", g.ttl) || g.id == 0 || g.ttl <= 0) {
    error = "malformed lease grant";
    return std::nullopt;
  }
  return g;
}

std::optional<int64_t> parse_lease_keepalive(std::string_view body, std::string& error) {
  auto j = parse_object(body, error);
  if (!j) return std::nullopt;
  // The gateway wraps the streamed answer: {"result": {"ID": .., "TTL": ..}}.
  const json* r = &*j;
  if (auto it = j->find("result"); it != j->end() && it->is_object()) r = &*it;
  int64_t ttl = 0;
  if (!get_int(*r, "TTL", ttl) || ttl < 0) {
    error = "malformed lease keepalive";
    return std::nullopt;
  }
  return ttl;
}

bool WatchDecoder::parse_line(std::string_view line, std::vector<WatchMessage>& out) {
  std::string error;
  auto j = parse_object(line, error);
  if (!j) {
    error_ = "watch: " + error;
    return false;
  }
  auto it = j->find("result");
  if (it == j->end() || !it->is_object()) {
    error_ = "watch: no result";
    return false;
  }
  const json& r = *it;
  WatchMessage m;
  read_header(r, m.header);
  m.created = r.value("created", false);
  m.canceled = r.value("canceled", false);
  if (!get_int(r, "compact_revision", m.compact_revision)) {
    error_ = "watch: malformed compact_revision";
    return false;
  }
  if (auto ev = r.find("events"); ev != r.end()) {
    if (!ev->is_array()) {
      error_ = "watch: events is not an array";
      return false;
    }
    for (const auto& e : *ev) {
      WatchEvent w;
      auto kv = e.is_object() ? e.find("kv") : e.end();
      if (!e.is_object() || kv == e.end() || !read_kv(*kv, w.kv)) {
        error_ = "watch: malformed event";
        return false;
      }
      auto type = e.find("type");
      w.type = type != e.end() && type->is_string() && *type == "DELETE" ? WatchEvent::Type::Delete
                                                                         : WatchEvent::Type::Put;
      m.events.push_back(std::move(w));
    }
  }
  out.push_back(std::move(m));
  return true;
}

bool WatchDecoder::feed(std::span<const uint8_t> bytes, std::vector<WatchMessage>& out) {
  if (failed()) return false;
  for (uint8_t b : bytes) {
    if (b != '\n') {
      if (buf_.size() >= kMaxWatchMessage) {
        error_ = "watch: a message longer than " + std::to_string(kMaxWatchMessage) + " bytes";
        buf_.clear();
        return false;
      }
      buf_.push_back(static_cast<char>(b));
      continue;
    }
    const bool blank = buf_.find_first_not_of(" \r\t") == std::string::npos;
    if (!blank && !parse_line(buf_, out)) {
      buf_.clear();
      return false;
    }
    buf_.clear();
  }
  return true;
}

} // namespace ztna::store
