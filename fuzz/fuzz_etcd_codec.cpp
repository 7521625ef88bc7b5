// The etcd JSON gateway's answers as the etcd client reads them (common/store/etcd_codec): a
// watch stream fed in pieces, and range, lease and header answers; then the same bytes as the
// answers and the watch of the intermediate's shared state (store::ClusterState), whose records
// (policy, members) are JSON inside etcd's values. Checks that nothing throws or crashes, that a
// failed watch decoder stays failed, and that its buffer stays bounded.
#include "fuzz_check.hpp"
#include "store/cluster_state.hpp"
#include "store/etcd_codec.hpp"

#include <string_view>

using namespace ztna::store;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  std::span<const uint8_t> rest(data + 1, size - 1);
  WatchDecoder d;
  std::vector<WatchMessage> out;
  bool failed = false;
  while (!rest.empty()) {
    const size_t n = std::min(piece, rest.size());
    const bool ok = d.feed(rest.first(n), out);
    FUZZ_CHECK(!(failed && ok));
    failed = failed || !ok;
    FUZZ_CHECK(d.buffered() <= kMaxWatchMessage);
    rest = rest.subspan(n);
  }
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string error;
  (void)parse_range(body, error);
  (void)parse_lease_grant(body, error);
  (void)parse_lease_keepalive(body, error);
  (void)parse_header(body, error);

  ClusterState cluster{ClusterConfig{"ztna/v1/", "n1", "192.0.2.1:4433"}};
  cluster.start(Time{});
  for (int round = 0; round < 2; ++round) {
    for (const auto& r : cluster.take_requests())
      cluster.on_response(r.id, body, {}, Time{});
    (void)cluster.take_watch();
    cluster.on_watch_bytes({data + 1, size - 1}, Time{});
    (void)cluster.take_events();
  }
  return 0;
}
