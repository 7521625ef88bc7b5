#include "store/cluster_state.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace ztna::store {

namespace {

using json = nlohmann::json;

// Calls outstanding at once: after an outage thousands of homes are written again, and a queue
// that long would only hold the answers to the keepalives up behind them.
constexpr size_t kMaxInFlight = 64;

std::string members_prefix(const ClusterConfig& c) {
  return c.prefix + "members/";
}

// Invalid UTF-8 never throws: it is replaced, the same way on both sides.
std::string compact(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// What a policy record's signature covers: the record without it, compact, keys sorted.
std::string signed_part(const json& record) {
  json j = record;
  j.erase("signature");
  return compact(j);
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bytes) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view s) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (s.size() % 2 != 0 || s.size() > 1024) return std::nullopt;
  std::vector<uint8_t> out;
  for (size_t i = 0; i < s.size(); i += 2) {
    const int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

} // namespace

ClusterState::ClusterState(ClusterConfig config) : config_(std::move(config)) {}

std::string ClusterState::home_key(Role role, const std::string& name) const {
  return config_.prefix + "homes/" + to_string(role) + "/" + name + "/" + config_.intermediate;
}

void ClusterState::start(Time now) {
  started_ = true;
  json member{{"address", config_.address}};
  const std::string key = members_prefix(config_) + config_.intermediate;
  desired_[key] = member.dump();
  dirty_.insert(key);
  pump(now);
}

void ClusterState::set_home(Role role, const std::string& name, const std::string& address,
                            const std::vector<std::string>& services, Time now) {
  json j{{"address", address}};
  if (role == Role::Connector) j["services"] = services;
  const std::string key = home_key(role, name);
  if (!desired_.count(key) && !written_.count(key)) due_[key] = now + config_.home_write_delay;
  auto [it, added] = desired_.insert_or_assign(key, j.dump());
  if (added) homes_++;
  dirty_.insert(key);
  pump(now);
}

void ClusterState::clear_home(Role role, const std::string& name, Time now) {
  const std::string key = home_key(role, name);
  due_.erase(key);
  if (desired_.erase(key)) {
    homes_--;
    dirty_.insert(key);
  }
  pump(now);
}

void ClusterState::publish_policy(std::string policy, std::string crl, uint64_t unix_ms, Time now) {
  json j{{"policy", std::move(policy)},
         {"crl", std::move(crl)},
         {"origin", config_.intermediate},
         {"written_unix_ms", unix_ms}};
  if (config_.signer) j["signature"] = to_hex(config_.signer->sign(signed_part(j)));
  policy_to_publish_ = compact(j);
  pump(now);
}

bool ClusterState::key_in_flight(const std::string& key) const {
  return keys_in_flight_.count(key) != 0;
}

void ClusterState::request(Op op, std::string path, std::string body, std::string key,
                           std::string value) {
  const uint64_t id = next_id_++;
  if (!key.empty()) keys_in_flight_.insert(key);
  in_flight_[id] = InFlight{op, std::move(key), std::move(value), lease_};
  requests_.push_back(Request{id, std::move(path), std::move(body)});
}

// Makes the calls that bring etcd to the desired state, unless a failure's backoff runs.
void ClusterState::pump(Time now) {
  if (!started_ || retry_pending_) return;
  std::erase_if(due_, [&](const auto& d) { return d.second <= now; });
  auto busy = [&](Op op) {
    return std::any_of(in_flight_.begin(), in_flight_.end(),
                       [&](const auto& f) { return f.second.op == op; });
  };
  if (!synced_ && !busy(Op::Range)) {
    stats_.ranges++;
    request(Op::Range, "/v3/kv/range",
            encode_range(members_prefix(config_), policy_key() + std::string(1, '\0')));
  }
  if (lease_ == 0) {
    if (!busy(Op::LeaseGrant)) {
      stats_.lease_grants++;
      const auto ttl = std::max<int64_t>(1, (config_.lease_ttl.count() + 999) / 1000);
      request(Op::LeaseGrant, "/v3/lease/grant", encode_lease_grant(ttl));
    }
  } else {
    // Only the keys that changed since etcd last agreed: a registration costs one lookup, not
    // a pass over every home.
    for (auto it = dirty_.begin(); it != dirty_.end() && in_flight_.size() < kMaxInFlight;) {
      const std::string& key = *it;
      if (due_.count(key) || key_in_flight(key)) {
        ++it;
        continue;
      }
      auto d = desired_.find(key);
      auto w = written_.find(key);
      if (d != desired_.end() && (w == written_.end() || w->second != d->second)) {
        request(Op::Put, "/v3/kv/put", encode_put(key, d->second, lease_), key, d->second);
        ++it;
      } else if (d == desired_.end() && w != written_.end()) {
        request(Op::Delete, "/v3/kv/deleterange", encode_delete(key), key);
        ++it;
      } else {
        it = dirty_.erase(it); // etcd holds what we want
      }
    }
  }
  if (policy_to_publish_ && !key_in_flight(policy_key()))
    request(Op::Put, "/v3/kv/put", encode_put(policy_key(), *policy_to_publish_), policy_key(),
            *policy_to_publish_);
  if (synced_ && !watch_open_) watch_wanted_ = true;
}

void ClusterState::on_response(uint64_t id, std::string_view body, const std::string& error,
                               Time now) {
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  InFlight call = std::move(it->second);
  in_flight_.erase(it);
  keys_in_flight_.erase(call.key);
  if (!error.empty()) return failed(call, error, now);
  std::string perr;
  switch (call.op) {
  case Op::LeaseGrant: {
    auto grant = parse_lease_grant(body, perr);
    if (!grant) return failed(call, perr, now);
    lease_ = grant->id;
    next_keepalive_ = now + config_.lease_ttl / 3;
    break;
  }
  case Op::KeepAlive: {
    auto ttl = parse_lease_keepalive(body, perr);
    if (!ttl) return failed(call, perr, now);
    if (*ttl == 0 && call.lease == lease_) lease_lost();
    break;
  }
  case Op::Put:
  case Op::Delete: {
    if (!parse_header(body, perr)) return failed(call, perr, now);
    if (call.op == Op::Put)
      stats_.puts++;
    else
      stats_.deletes++;
    if (call.key == policy_key()) {
      if (policy_to_publish_ == call.value) policy_to_publish_.reset();
    } else if (call.op == Op::Delete) {
      written_.erase(call.key);
    } else if (call.lease == lease_) {
      written_[call.key] = call.value; // under the lease still in force
    }
    break;
  }
  case Op::Range: {
    auto range = parse_range(body, perr);
    if (!range) return failed(call, perr, now);
    on_range(*range);
    break;
  }
  }
  succeeded(now);
  pump(now);
}

void ClusterState::failed(const InFlight& call, const std::string& error, Time now) {
  stats_.failures++;
  // The lease expired while etcd could not hear us: everything under it is gone. Not an outage.
  if (error.find("lease not found") != std::string::npos) {
    if (call.lease == lease_) lease_lost();
    pump(now);
    return;
  }
  backoff_ = backoff_.count() == 0 ? config_.retry_min : std::min(backoff_ * 2, config_.retry_max);
  retry_at_ = now + backoff_;
  retry_pending_ = true;
  if (up_ || !reported_down_) {
    up_ = false;
    reported_down_ = true;
    events_.push_back(Event{Event::Kind::Down, error, {}});
  }
}

void ClusterState::succeeded(Time) {
  backoff_ = std::chrono::milliseconds(0);
  if (!up_) {
    up_ = true;
    reported_down_ = false;
    events_.push_back(Event{Event::Kind::Up, {}, {}});
  }
}

void ClusterState::lease_lost() {
  stats_.leases_lost++;
  lease_ = 0;
  written_.clear();
  for (const auto& [key, value] : desired_)
    dirty_.insert(key);
}

void ClusterState::on_range(const RangeResult& r) {
  revision_ = std::max(revision_, r.header.revision);
  members_.clear();
  bool policy_seen = false;
  for (const auto& kv : r.kvs) {
    if (kv.key == policy_key()) {
      policy_seen = true;
      apply_policy(kv);
    } else {
      on_watch_message(
          WatchMessage{r.header, false, false, 0, {WatchEvent{WatchEvent::Type::Put, kv}}});
    }
  }
  if (!policy_seen && policy_revision_ == 0 && !policy_to_publish_)
    events_.push_back(Event{Event::Kind::PolicyAbsent, {}, {}});
  synced_ = true;
}

void ClusterState::apply_policy(const KeyValue& kv) {
  if (kv.mod_revision <= policy_revision_) return;
  auto j = json::parse(kv.value, nullptr, false);
  PolicyRecord rec;
  rec.revision = kv.mod_revision;
  bool ok = j.is_object();
  auto text = [&](const char* field, std::string& out) {
    auto it = ok ? j.find(field) : j.end();
    if (it == j.end() || !it->is_string()) return void(ok = false);
    out = it->get<std::string>();
  };
  text("policy", rec.policy);
  text("crl", rec.crl);
  text("origin", rec.origin);
  if (ok) {
    auto it = j.find("written_unix_ms");
    if (it != j.end() && it->is_number_unsigned()) rec.written_unix_ms = it->get<uint64_t>();
  }
  policy_revision_ = kv.mod_revision; // a bad record is not looked at twice
  if (ok && config_.signer) {
    auto sig = j.find("signature");
    auto bytes = sig != j.end() && sig->is_string() ? from_hex(sig->get_ref<const std::string&>())
                                                    : std::nullopt;
    if (!bytes || !config_.signer->verify(signed_part(j), *bytes)) {
      stats_.records_refused++;
      events_.push_back(Event{Event::Kind::Invalid,
                              "policy record at revision " + std::to_string(kv.mod_revision) +
                                  " from '" + rec.origin +
                                  "' refused: its signature does not verify with this "
                                  "deployment's authorization key",
                              {}});
      return;
    }
  }
  if (!ok) {
    stats_.records_malformed++;
    events_.push_back(Event{Event::Kind::Invalid,
                            "policy record at revision " + std::to_string(kv.mod_revision) +
                                " is not {policy, crl, origin}",
                            {}});
    return;
  }
  stats_.policy_updates++;
  events_.push_back(Event{Event::Kind::Policy, {}, std::move(rec)});
}

void ClusterState::on_watch_message(const WatchMessage& m) {
  revision_ = std::max(revision_, m.header.revision);
  if (m.canceled || m.compact_revision != 0) {
    // Events were lost (compacted away) or etcd dropped the watch: read everything again.
    synced_ = false;
    watch_open_ = false;
    return;
  }
  const std::string members = members_prefix(config_);
  for (const auto& e : m.events) {
    revision_ = std::max(revision_, e.kv.mod_revision);
    if (e.kv.key == policy_key()) {
      if (e.type == WatchEvent::Type::Put) apply_policy(e.kv);
      continue;
    }
    if (e.kv.key.compare(0, members.size(), members) != 0) continue;
    const std::string name = e.kv.key.substr(members.size());
    if (e.type == WatchEvent::Type::Delete) {
      members_.erase(name);
      continue;
    }
    auto j = json::parse(e.kv.value, nullptr, false);
    auto a = j.is_object() ? j.find("address") : j.end();
    if (a == j.end() || !a->is_string()) {
      stats_.records_malformed++;
      continue;
    }
    members_[name] = a->get<std::string>();
  }
}

std::string ClusterState::take_watch() {
  if (!watch_wanted_) return {};
  watch_wanted_ = false;
  watch_open_ = true;
  watch_ = WatchDecoder{};
  return encode_watch_create(members_prefix(config_), policy_key() + std::string(1, '\0'),
                             revision_ + 1);
}

void ClusterState::on_watch_bytes(std::span<const uint8_t> bytes, Time now) {
  if (!watch_open_) return;
  std::vector<WatchMessage> messages;
  const bool ok = watch_.feed(bytes, messages);
  for (const auto& m : messages)
    on_watch_message(m);
  if (!ok) {
    stats_.records_malformed++;
    events_.push_back(Event{Event::Kind::Invalid, "watch stream: " + watch_.error(), {}});
    on_watch_end(watch_.error(), now);
    return;
  }
  pump(now);
}

void ClusterState::on_watch_end(const std::string&, Time now) {
  if (!watch_open_ && synced_) return;
  stats_.watch_restarts++;
  watch_open_ = false;
  synced_ = false; // read again from where the watch stopped; nothing is missed
  pump(now);
}

void ClusterState::handle_timeout(Time now) {
  if (retry_pending_ && now >= retry_at_) retry_pending_ = false;
  if (lease_ != 0 && now >= next_keepalive_) {
    next_keepalive_ = now + config_.lease_ttl / 3;
    stats_.keepalives++;
    request(Op::KeepAlive, "/v3/lease/keepalive", encode_lease_keepalive(lease_));
  }
  pump(now);
}

std::optional<Time> ClusterState::next_timeout() const {
  std::optional<Time> t;
  auto earlier = [&](Time x) {
    if (!t || x < *t) t = x;
  };
  if (lease_ != 0) earlier(next_keepalive_);
  if (retry_pending_) {
    earlier(retry_at_); // homes that came due meanwhile wait for it too
  } else {
    for (const auto& [key, due] : due_)
      earlier(due);
  }
  return t;
}

std::vector<ClusterState::Request> ClusterState::take_requests() {
  return std::exchange(requests_, {});
}

std::vector<ClusterState::Event> ClusterState::take_events() {
  return std::exchange(events_, {});
}

} // namespace ztna::store
