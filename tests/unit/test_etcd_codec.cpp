// store::etcd_codec: the etcd v3 JSON gateway's request bodies and the parsing of its answers,
// checked against bodies etcd 3.4.23 (Debian's etcd-server) sent.
#include <catch2/catch.hpp>

#include "store/etcd_codec.hpp"

#include <nlohmann/json.hpp>

using namespace ztna::store;

namespace {
std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
} // namespace

TEST_CASE("etcd: request bodies", "[etcd]") {
  CHECK(nlohmann::json::parse(encode_put("ztna/x", "hello")) ==
        nlohmann::json{{"key", "enRuYS94"}, {"value", "aGVsbG8="}});
  CHECK(nlohmann::json::parse(encode_put("k", "", 7)) ==
        nlohmann::json{{"key", "aw=="}, {"value", ""}, {"lease", "7"}});
  CHECK(nlohmann::json::parse(encode_range("ztna/", prefix_end("ztna/"))) ==
        nlohmann::json{{"key", "enRuYS8="}, {"range_end", "enRuYTA="}});
  CHECK(nlohmann::json::parse(encode_lease_grant(5)) == nlohmann::json{{"TTL", "5"}});
  CHECK(nlohmann::json::parse(encode_lease_keepalive(2324035738919630599)) ==
        nlohmann::json{{"ID", "2324035738919630599"}});
  CHECK(nlohmann::json::parse(encode_watch_create("a", "b", 12)) ==
        nlohmann::json{{"create_request",
                        {{"key", "YQ=="}, {"range_end", "Yg=="}, {"start_revision", "12"}}}});
}

TEST_CASE("etcd: prefix ends", "[etcd]") {
  CHECK(prefix_end("ztna/") == "ztna0");
  CHECK(prefix_end(std::string("a\xff", 2)) == "b");
  CHECK(prefix_end("") == std::string(1, '\0'));
}

TEST_CASE("etcd: range, lease and header answers as etcd sends them", "[etcd]") {
  std::string error;
  auto r = parse_range(
      R"({"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"kvs":[{"key":"enRuYS94","create_revision":"2","mod_revision":"2","version":"1","value":"aGVsbG8="}],"count":"1"})",
      error);
  REQUIRE(r);
  CHECK(r->header.revision == 2);
  REQUIRE(r->kvs.size() == 1);
  CHECK(r->kvs[0] == KeyValue{"ztna/x", "hello", 2, 0});
  auto empty = parse_range(R"({"header":{"revision":"9"}})", error);
  REQUIRE(empty);
  CHECK(empty->kvs.empty());
  auto g = parse_lease_grant(
      R"({"header":{"revision":"2"},"ID":"2324035738919630599","TTL":"5"})", error);
  REQUIRE(g);
  CHECK(g->id == 2324035738919630599);
  CHECK(g->ttl == 5);
  // A keepalive for an expired lease comes back without a TTL: 0, the lease is gone.
  auto ka = parse_lease_keepalive(
      R"({"result":{"header":{"revision":"3"},"ID":"2324035738919630599"}})", error);
  REQUIRE(ka);
  CHECK(*ka == 0);
  CHECK(parse_lease_keepalive(R"({"result":{"header":{},"ID":"1","TTL":"4"}})", error) == 4);
}

TEST_CASE("etcd: what is not an answer is refused with a reason", "[etcd]") {
  std::string error;
  CHECK_FALSE(parse_range("not json", error));
  CHECK(error == "not a JSON object");
  CHECK_FALSE(parse_range(R"({"error":"etcdserver: request timed out","code":14})", error));
  CHECK(error == "etcd: etcdserver: request timed out");
  CHECK_FALSE(parse_range(R"({"header":{"revision":"2"},"kvs":[{"key":"!!"}]})", error));
  CHECK(error == "malformed key-value");
  CHECK_FALSE(parse_range(R"({"header":{"revision":"x2"}})", error));
  CHECK_FALSE(parse_range(R"({"kvs":[]})", error));
  CHECK(error == "no header");
  CHECK_FALSE(parse_lease_grant(R"({"header":{},"ID":"0","TTL":"5"})", error));
  CHECK_FALSE(parse_range(std::string(kMaxResponse + 1, ' '), error));
}

TEST_CASE("etcd: a watch stream, in pieces", "[etcd]") {
  const std::string stream =
      R"({"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"created":true}})"
      "\n"
      R"({"result":{"header":{"revision":"2"},"events":[{"kv":{"key":"enRuYS94","create_revision":"2","mod_revision":"2","version":"1","value":"aGVsbG8="}}]}})"
      "\n"
      R"({"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"enRuYS94","mod_revision":"4"}}]}})"
      "\n";
  for (size_t piece : {size_t{1}, size_t{7}, stream.size()}) {
    WatchDecoder d;
    std::vector<WatchMessage> out;
    for (size_t i = 0; i < stream.size(); i += piece)
      REQUIRE(d.feed(bytes_of(std::string_view(stream).substr(i, piece)), out));
    REQUIRE(out.size() == 3);
    CHECK(out[0].created);
    CHECK(out[0].events.empty());
    REQUIRE(out[1].events.size() == 1);
    CHECK(out[1].events[0].type == WatchEvent::Type::Put);
    CHECK(out[1].events[0].kv == KeyValue{"ztna/x", "hello", 2, 0});
    REQUIRE(out[2].events.size() == 1);
    CHECK(out[2].events[0].type == WatchEvent::Type::Delete);
    CHECK(out[2].header.revision == 4);
    CHECK(d.buffered() == 0);
  }
}

TEST_CASE("etcd: a broken watch stream fails and stays failed", "[etcd]") {
  WatchDecoder d;
  std::vector<WatchMessage> out;
  CHECK_FALSE(d.feed(bytes_of("{\"result\":{\"events\":7}}\n"), out));
  CHECK(d.error() == "watch: events is not an array");
  CHECK_FALSE(d.feed(bytes_of("{\"result\":{}}\n"), out));
  WatchDecoder big;
  const std::string huge(kMaxWatchMessage + 1, 'x');
  CHECK_FALSE(big.feed(bytes_of(huge), out));
  CHECK(big.buffered() == 0);
  CHECK(out.empty());
}
