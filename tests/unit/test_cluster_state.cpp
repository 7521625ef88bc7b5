// store::ClusterState: the calls it makes to etcd for the shared state of several intermediates
// (DESIGN D11), answered here with bodies shaped as etcd 3.4's JSON gateway sends them
// (test_etcd_codec.cpp checks those against a real etcd; tests/integration/test_etcd_cluster.sh
// runs the whole against three real etcd nodes).
#include <catch2/catch.hpp>

#include "store/cluster_state.hpp"

#include <nlohmann/json.hpp>

using namespace ztna;
using namespace ztna::store;
using namespace std::chrono_literals;
using Kind = ClusterState::Event::Kind;

namespace {

const Time t0{};

std::string b64(std::string_view s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    for (int k = 18; k >= 0; k -= 6)
      out += t[(v >> k) & 63];
  }
  if (i + 1 == s.size()) {
    uint32_t v = uint8_t(s[i]) << 16;
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == s.size()) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string header(int64_t rev) {
  return R"({"header":{"cluster_id":"1","member_id":"2","revision":")" + std::to_string(rev) +
         R"(","raft_term":"2"}})";
}

std::string kv_json(const std::string& key, const std::string& value, int64_t rev) {
  return R"({"key":")" + b64(key) + R"(","create_revision":")" + std::to_string(rev) +
         R"(","mod_revision":")" + std::to_string(rev) + R"(","version":"1","value":")" +
         b64(value) + R"("})";
}

std::string watch_line(int64_t rev, const std::string& events) {
  return R"({"result":{"header":{"revision":")" + std::to_string(rev) + R"("},"events":[)" +
         events + "]}}\n";
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string record(const std::string& policy, const std::string& origin) {
  return nlohmann::json{{"policy", policy}, {"crl", ""}, {"origin", origin}}.dump();
}

// A stand-in for the authorization key (test_authorization.cpp checks the real signatures):
// the "signature" is the record's length and first byte, and says whether it was made by us.
struct TestSigner : RecordSigner {
  std::vector<uint8_t> sign(std::string_view record) const override {
    return {static_cast<uint8_t>(record.size()), static_cast<uint8_t>(record[0]), 0x5a};
  }
  bool verify(std::string_view record, std::span<const uint8_t> sig) const override {
    auto want = sign(record);
    return std::equal(want.begin(), want.end(), sig.begin(), sig.end());
  }
};

struct Cluster {
  // Homes written at once here; "cluster: a short registration" checks the delay.
  ClusterState core{
      ClusterConfig{"ztna/v1/", "n1", "192.0.2.1:4433", 6000ms, 100ms, 2000ms, 0ms, nullptr}};
  std::vector<ClusterState::Request> pending;

  std::vector<ClusterState::Request> take() {
    auto r = core.take_requests();
    pending.insert(pending.end(), r.begin(), r.end());
    return r;
  }
  // Answers the oldest request with this path.
  void answer(const std::string& path, const std::string& body, const std::string& error = {},
              Time now = t0) {
    take();
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      if (it->path != path) continue;
      auto id = it->id;
      pending.erase(it);
      core.on_response(id, body, error, now);
      return;
    }
    FAIL("no pending " << path);
  }
  bool has(const std::string& path, const std::string& body) {
    take();
    for (const auto& r : pending)
      if (r.path == path && r.body == body) return true;
    return false;
  }
  size_t count(const std::string& path) {
    take();
    return std::count_if(pending.begin(), pending.end(),
                         [&](const auto& r) { return r.path == path; });
  }
  std::vector<Kind> kinds() {
    std::vector<Kind> k;
    for (const auto& e : core.take_events())
      k.push_back(e.kind);
    return k;
  }
  // start, range at revision 5 without a policy, lease 77, member record written.
  void up() {
    core.start(t0);
    answer("/v3/kv/range", header(5));
    answer("/v3/lease/grant", R"({"header":{"revision":"5"},"ID":"77","TTL":"6"})");
    answer("/v3/kv/put", header(6));
  }
};

const std::string kMember = R"({"address":"192.0.2.1:4433"})";

} // namespace

TEST_CASE("cluster: start reads the watched keys, takes a lease and writes its member record",
          "[cluster]") {
  Cluster c;
  c.core.start(t0);
  CHECK(
      c.has("/v3/kv/range", encode_range("ztna/v1/members/", std::string("ztna/v1/policy\0", 15))));
  CHECK(c.has("/v3/lease/grant", encode_lease_grant(6)));
  c.answer("/v3/kv/range", header(5));
  CHECK(c.kinds() == std::vector{Kind::PolicyAbsent, Kind::Up});
  CHECK(c.core.take_watch() ==
        encode_watch_create("ztna/v1/members/", std::string("ztna/v1/policy\0", 15), 6));
  CHECK(c.core.take_watch().empty()); // one at a time
  c.answer("/v3/lease/grant", R"({"header":{"revision":"5"},"ID":"77","TTL":"6"})");
  CHECK(c.has("/v3/kv/put", encode_put("ztna/v1/members/n1", kMember, 77)));
  c.answer("/v3/kv/put", header(6));
  CHECK(c.core.up());
  CHECK(c.core.lease() == 77);
  // Keepalives every third of the TTL.
  REQUIRE(c.core.next_timeout());
  CHECK(*c.core.next_timeout() == t0 + 2000ms);
  c.core.handle_timeout(t0 + 2000ms);
  CHECK(c.has("/v3/lease/keepalive", encode_lease_keepalive(77)));
}

TEST_CASE("cluster: a registration is one write, its end another", "[cluster]") {
  Cluster c;
  c.up();
  const auto before = c.core.stats().puts + c.core.stats().deletes;
  c.core.set_home(Role::Connector, "c1", "198.51.100.7:5000", {"db", "web"}, t0);
  const std::string key = "ztna/v1/homes/connector/c1/n1";
  CHECK(c.has("/v3/kv/put",
              encode_put(key, R"({"address":"198.51.100.7:5000","services":["db","web"]})", 77)));
  c.answer("/v3/kv/put", header(7));
  CHECK(c.core.homes() == 1);
  // The same record again writes nothing.
  c.core.set_home(Role::Connector, "c1", "198.51.100.7:5000", {"db", "web"}, t0);
  CHECK(c.count("/v3/kv/put") == 0);
  c.core.clear_home(Role::Connector, "c1", t0);
  CHECK(c.has("/v3/kv/deleterange", encode_delete(key)));
  c.answer("/v3/kv/deleterange", header(8));
  CHECK(c.core.homes() == 0);
  CHECK(c.core.stats().puts + c.core.stats().deletes - before == 2);
}

TEST_CASE("cluster: an outage is said once, waits, and the desired state is written after",
          "[cluster]") {
  Cluster c;
  c.up();
  c.core.take_events();
  c.core.set_home(Role::Agent, "a1", "203.0.113.5:6000", {}, t0);
  c.answer("/v3/kv/put", {}, "connect 10.0.0.1:2379: Connection refused", t0 + 1s);
  CHECK(c.kinds() == std::vector{Kind::Down});
  CHECK_FALSE(c.core.up());
  // Nothing new while the backoff runs: a second registration waits for it.
  c.core.set_home(Role::Agent, "a2", "203.0.113.6:6000", {}, t0 + 1s);
  CHECK(c.count("/v3/kv/put") == 0);
  REQUIRE(c.core.next_timeout());
  CHECK(*c.core.next_timeout() == t0 + 1s + 100ms);
  c.core.handle_timeout(t0 + 1s + 100ms);
  CHECK(c.count("/v3/kv/put") == 2);
  c.answer("/v3/kv/put", header(7), {}, t0 + 1200ms);
  CHECK(c.kinds() == std::vector{Kind::Up});
  c.answer("/v3/kv/put", header(8), {}, t0 + 1200ms);
  CHECK(c.core.homes() == 2);
  // Failures in a row back off further, up to the maximum.
  c.core.set_home(Role::Agent, "a3", "203.0.113.7:6000", {}, t0 + 2s);
  Time now = t0 + 2s;
  std::chrono::milliseconds expect = 100ms;
  for (int i = 0; i < 7; ++i) {
    c.answer("/v3/kv/put", {}, "timeout", now);
    REQUIRE(c.core.next_timeout());
    CHECK(*c.core.next_timeout() <= now + expect);
    c.core.handle_timeout(now + expect - 1ms);
    CHECK(c.count("/v3/kv/put") == 0);
    now += expect;
    c.core.handle_timeout(now);
    CHECK(c.count("/v3/kv/put") == 1);
    expect = std::min(expect * 2, std::chrono::milliseconds(2000));
  }
  CHECK(c.kinds() == std::vector{Kind::Down});
}

TEST_CASE("cluster: a lost lease takes a new one and writes everything again", "[cluster]") {
  Cluster c;
  c.up();
  c.core.take_events();
  c.core.set_home(Role::Agent, "a1", "203.0.113.5:6000", {}, t0);
  c.answer("/v3/kv/put", header(7));
  SECTION("a keepalive answer without a TTL") {
    c.core.handle_timeout(t0 + 2s);
    c.answer("/v3/lease/keepalive", R"({"result":{"header":{"revision":"7"},"ID":"77"}})");
  }
  SECTION("a write refused for an unknown lease") {
    c.core.set_home(Role::Agent, "a1", "203.0.113.9:6000", {}, t0);
    c.answer("/v3/kv/put", {},
             R"(HTTP 400: {"error":"etcdserver: requested lease not found","code":5})");
    CHECK(c.kinds().empty()); // not an outage
  }
  CHECK(c.core.lease() == 0);
  CHECK(c.core.stats().leases_lost == 1);
  c.answer("/v3/lease/grant", R"({"header":{"revision":"8"},"ID":"78","TTL":"6"})");
  CHECK(c.count("/v3/kv/put") == 2); // member and home, under lease 78
  CHECK(c.has("/v3/kv/put", encode_put("ztna/v1/members/n1", kMember, 78)));
}

TEST_CASE("cluster: the watch brings newer policy records and members", "[cluster]") {
  Cluster c;
  c.up();
  c.core.take_events();
  REQUIRE_FALSE(c.core.take_watch().empty());
  c.core.on_watch_bytes(
      bytes(R"({"result":{"header":{"revision":"6"},"created":true}})"
            "\n" +
            watch_line(
                9, kv_json("ztna/v1/policy", record("version = 1\n", "n2"), 9) + "," + R"({"kv":)" +
                       kv_json("ztna/v1/members/n2", R"({"address":"192.0.2.2:4433"})", 9) + "}")
                .substr(0, 40)),
      t0);
  CHECK(c.kinds().empty()); // half a line: nothing yet
}

TEST_CASE("cluster: policy records by revision; bad ones are said and skipped", "[cluster]") {
  Cluster c;
  c.up();
  c.core.take_events();
  REQUIRE_FALSE(c.core.take_watch().empty());
  auto put = [&](const std::string& key, const std::string& value, int64_t rev) {
    c.core.on_watch_bytes(bytes(watch_line(rev, R"({"kv":)" + kv_json(key, value, rev) + "}")), t0);
  };
  put("ztna/v1/policy", record("version = 1\n", "n2"), 9);
  auto events = c.core.take_events();
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == Kind::Policy);
  CHECK(events[0].policy.revision == 9);
  CHECK(events[0].policy.origin == "n2");
  CHECK(events[0].policy.policy == "version = 1\n");
  CHECK(c.core.policy_revision() == 9);
  put("ztna/v1/policy", record("old", "n3"), 8); // older: not applied
  CHECK(c.kinds().empty());
  put("ztna/v1/policy", R"({"policy":1})", 10);
  CHECK(c.kinds() == std::vector{Kind::Invalid});
  CHECK(c.core.stats().records_malformed == 1);
  put("ztna/v1/members/n2", R"({"address":"192.0.2.2:4433"})", 11);
  CHECK(c.core.members().at("n2") == "192.0.2.2:4433");
  c.core.on_watch_bytes(
      bytes(watch_line(12, R"({"type":"DELETE","kv":{"key":")" + b64("ztna/v1/members/n2") +
                               R"(","mod_revision":"12"}})")),
      t0);
  CHECK(c.core.members().count("n2") == 0);
}

TEST_CASE("cluster: a watch that ends or loses events is read again from where it was",
          "[cluster]") {
  Cluster c;
  c.up();
  REQUIRE_FALSE(c.core.take_watch().empty());
  SECTION("the stream ends") {
    c.core.on_watch_end("connection reset", t0);
  }
  SECTION("compacted") {
    c.core.on_watch_bytes(bytes(R"({"result":{"header":{"revision":"40"},"compact_revision":"30"}})"
                                "\n"),
                          t0);
  }
  SECTION("garbage") {
    c.core.on_watch_bytes(bytes("{not json}\n"), t0);
  }
  CHECK_FALSE(c.core.watching());
  CHECK(c.count("/v3/kv/range") == 1);
  c.answer("/v3/kv/range", R"({"header":{"revision":"41"},"kvs":[)" +
                               kv_json("ztna/v1/policy", record("version = 1\n", "n3"), 33) + "]}");
  auto events = c.core.take_events();
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().kind == Kind::Policy);
  CHECK(events.back().policy.revision == 33);
  CHECK(c.core.take_watch() ==
        encode_watch_create("ztna/v1/members/", std::string("ztna/v1/policy\0", 15), 42));
}

TEST_CASE("cluster: a policy published here is retried until etcd takes it", "[cluster]") {
  Cluster c;
  c.up();
  c.core.publish_policy("version = 1\n", "", 1000, t0);
  const auto body = encode_put("ztna/v1/policy", nlohmann::json{{"policy", "version = 1\n"},
                                                                {"crl", ""},
                                                                {"origin", "n1"},
                                                                {"written_unix_ms", 1000}}
                                                     .dump());
  CHECK(c.has("/v3/kv/put", body));
  c.answer("/v3/kv/put", {}, "timeout", t0 + 1s);
  c.core.handle_timeout(t0 + 2s);
  CHECK(c.has("/v3/kv/put", body));
  c.answer("/v3/kv/put", header(20), {}, t0 + 2s);
  c.core.handle_timeout(t0 + 3s);
  CHECK(c.count("/v3/kv/put") == 0);
}

TEST_CASE("cluster: policy records are signed, and unsigned or forged ones refused", "[cluster]") {
  TestSigner signer;
  ClusterConfig config{"ztna/v1/", "n1", "192.0.2.1:4433", 6000ms, 100ms, 2000ms, 0ms, &signer};
  ClusterState core{config};
  core.start(t0);
  core.publish_policy("version = 1\n", "", 1000, t0);
  std::string written;
  for (const auto& r : core.take_requests()) {
    if (r.path == "/v3/kv/put" && r.body.find(b64("ztna/v1/policy")) != std::string::npos)
      written = r.body;
    if (r.path == "/v3/kv/range") core.on_response(r.id, header(5), {}, t0);
  }
  REQUIRE_FALSE(written.empty());
  const std::string value = nlohmann::json{
      {"crl", ""},
      {"origin", "n1"},
      {"policy", "version = 1\n"},
      {"written_unix_ms", 1000}}.dump();
  const auto sig = signer.sign(value);
  char hex[7];
  snprintf(hex, sizeof hex, "%02x%02x%02x", sig[0], sig[1], sig[2]);
  auto signed_value = nlohmann::json::parse(value);
  signed_value["signature"] = hex;
  CHECK(written == encode_put("ztna/v1/policy", signed_value.dump()));
  REQUIRE_FALSE(core.take_watch().empty());
  auto deliver = [&](const std::string& v, int64_t rev) {
    core.on_watch_bytes(
        bytes(watch_line(rev, R"({"kv":)" + kv_json("ztna/v1/policy", v, rev) + "}")), t0);
    return core.take_events();
  };
  (void)core.take_events();
  auto events = deliver(signed_value.dump(), 9);
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == Kind::Policy);
  // Unsigned, or signed over something else: refused, said, counted.
  events = deliver(record("version = 1\n", "n2"), 10);
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == Kind::Invalid);
  CHECK(events[0].detail.find("signature does not verify") != std::string::npos);
  auto forged = signed_value;
  forged["policy"] = "version = 1\n[[access]]\nagents = [\"*\"]\nservices = [\"*\"]\n";
  events = deliver(forged.dump(), 11);
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == Kind::Invalid);
  CHECK(core.stats().records_refused == 2);
  CHECK(core.policy_revision() == 11); // looked at once
}

TEST_CASE("cluster: a short registration writes nothing; a lasting one after the delay",
          "[cluster]") {
  ClusterState core{
      ClusterConfig{"ztna/v1/", "n1", "192.0.2.1:4433", 6000ms, 100ms, 2000ms, 1000ms, nullptr}};
  core.start(t0);
  for (const auto& r : core.take_requests()) {
    if (r.path == "/v3/kv/range") core.on_response(r.id, header(5), {}, t0);
    if (r.path == "/v3/lease/grant")
      core.on_response(r.id, R"({"header":{"revision":"5"},"ID":"77","TTL":"6"})", {}, t0);
  }
  for (const auto& r : core.take_requests())
    core.on_response(r.id, header(6), {}, t0); // the member record
  const auto writes = [&] { return core.stats().puts + core.stats().deletes; };
  const auto before = writes();
  // The calls that write keys (keepalives go on beside them).
  const auto kv_calls = [&] {
    std::vector<ClusterState::Request> out;
    for (auto& r : core.take_requests())
      if (r.path.rfind("/v3/kv/", 0) == 0) out.push_back(std::move(r));
    return out;
  };
  // An agent racing three intermediates registers here, loses, and leaves 40 ms later.
  core.set_home(Role::Agent, "a1", "203.0.113.5:6000", {}, t0 + 10ms);
  core.clear_home(Role::Agent, "a1", t0 + 50ms);
  core.handle_timeout(t0 + 2s);
  CHECK(kv_calls().empty());
  // One that stays is written once the delay is over, not before.
  core.set_home(Role::Agent, "a2", "203.0.113.6:6000", {}, t0 + 3s);
  REQUIRE(core.next_timeout());
  CHECK(*core.next_timeout() <= t0 + 4s);
  core.handle_timeout(t0 + 3999ms);
  CHECK(kv_calls().empty());
  core.handle_timeout(t0 + 4s);
  auto reqs = kv_calls();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].body ==
        encode_put("ztna/v1/homes/agent/a2/n1", R"({"address":"203.0.113.6:6000"})", 77));
  core.on_response(reqs[0].id, header(7), {}, t0 + 4s);
  // A new address for a home already written goes out at once.
  core.set_home(Role::Agent, "a2", "203.0.113.6:6001", {}, t0 + 5s);
  CHECK(kv_calls().size() == 1);
  CHECK(writes() - before == 1);
}
