// What the intermediates of one deployment share through etcd (DESIGN D11), sans-IO: the keys,
// the lease they live under, the policy record and its watch. The daemon feeds it the answers of
// the etcd calls it asked for, the bytes of its watch and the time; it says which calls to make.
//
// Keys, under a prefix ("ztna/v1/" by default; docs/operations.md):
//   members/<intermediate>                    {"address"}                                   lease
//   homes/<role>/<name>/<intermediate>        {"address", "services" (connectors)}          lease
//   policy                                    {"policy", "crl", "origin", "written_unix_ms",
//                                              "signature"}
// Members and homes live under this intermediate's lease: when it dies, they go with the lease's
// TTL. The policy record carries the policy file and the CRL together, signed (RecordSigner over
// the record without "signature", as compact JSON with sorted keys); its etcd mod_revision is
// the cluster's policy version. Every intermediate watches members/ and policy, never homes/:
// the watch traffic stays independent of the number of peers.
//
// Desired state, not a log: set_home/clear_home say what should be in etcd, and the core writes
// the difference, one call per key, again after a lost lease. While etcd cannot be reached the
// daemon carries on with what it has (docs/operations.md: degraded mode).
#pragma once

#include "identity/identity.hpp"
#include "store/etcd_codec.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ztna::store {

using Time = std::chrono::steady_clock::time_point;

// Signs the policy records an intermediate writes and checks those it reads, so that write
// access to etcd alone never decides policy (the daemon: the deployment's authorization key,
// which every intermediate holds). Signatures travel in the record as hex.
class RecordSigner {
public:
  virtual ~RecordSigner() = default;
  virtual std::vector<uint8_t> sign(std::string_view record) const = 0;
  virtual bool verify(std::string_view record, std::span<const uint8_t> signature) const = 0;
};

struct ClusterConfig {
  std::string prefix = "ztna/v1/";
  std::string intermediate; // our node name, unique in the deployment
  std::string address;      // where peers reach us, for members/
  std::chrono::milliseconds lease_ttl{5000};
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{2000};
  // A home is written once its registration has lasted this long: an agent racing several
  // intermediates for a home registers with the losers for a round trip or two, and a peer that
  // comes and goes at once costs etcd nothing.
  std::chrono::milliseconds home_write_delay{1000};
  const RecordSigner* signer = nullptr; // required for policy records; outlives the core
};

struct PolicyRecord {
  std::string policy; // the policy file's text (docs/policy.md)
  std::string crl;    // PEM; empty: none
  std::string origin; // the intermediate that wrote it
  uint64_t written_unix_ms = 0;
  int64_t revision = 0; // etcd's mod_revision of the record: the cluster's policy version
};

struct ClusterStats {
  uint64_t puts = 0, deletes = 0; // writes to etcd
  uint64_t ranges = 0, lease_grants = 0, keepalives = 0;
  uint64_t failures = 0;    // calls that failed (transport or etcd error)
  uint64_t leases_lost = 0; // a lease expired under us: its keys written again
  uint64_t watch_restarts = 0;
  uint64_t policy_updates = 0; // policy records seen with a newer revision
  uint64_t records_malformed = 0;
  uint64_t records_refused = 0; // policy records whose signature does not verify
};

class ClusterState {
public:
  struct Request {
    uint64_t id = 0;
    std::string path; // e.g. "/v3/kv/put"
    std::string body;
  };
  struct Event {
    enum class Kind {
      Up,           // etcd answers (again)
      Down,         // a call failed: etcd unreachable or unhealthy (detail says why)
      Policy,       // a policy record newer than the last one (policy)
      PolicyAbsent, // etcd holds no policy yet: the daemon may publish its own
      Invalid,      // etcd holds a record that is not ours to read (detail says which)
    };
    Kind kind = Kind::Up;
    std::string detail;
    PolicyRecord policy;
  };

  explicit ClusterState(ClusterConfig config);

  void start(Time now);
  // A peer registered here (again: replaces the record) or left.
  void set_home(Role role, const std::string& name, const std::string& address,
                const std::vector<std::string>& services, Time now);
  void clear_home(Role role, const std::string& name, Time now);
  // Write a new policy record; retried until etcd takes it. A later call replaces a pending one.
  void publish_policy(std::string policy, std::string crl, uint64_t unix_ms, Time now);

  // The answer to a request: its body, or the reason it failed.
  void on_response(uint64_t id, std::string_view body, const std::string& error, Time now);
  // A watch to open (replacing any open one): its request body. Empty if none is wanted now.
  std::string take_watch();
  void on_watch_bytes(std::span<const uint8_t> bytes, Time now);
  void on_watch_end(const std::string& why, Time now);

  void handle_timeout(Time now);
  std::optional<Time> next_timeout() const;
  std::vector<Request> take_requests();
  std::vector<Event> take_events();

  bool up() const { return up_; }
  bool watching() const { return watch_open_; }
  int64_t lease() const { return lease_; }
  int64_t policy_revision() const { return policy_revision_; }
  size_t homes() const { return homes_; }
  // Members of the cluster as etcd last told us: name -> address.
  const std::map<std::string, std::string>& members() const { return members_; }
  const ClusterStats& stats() const { return stats_; }
  const ClusterConfig& config() const { return config_; }

  std::string home_key(Role role, const std::string& name) const;
  std::string policy_key() const { return config_.prefix + "policy"; }

private:
  enum class Op { LeaseGrant, KeepAlive, Put, Delete, Range };
  struct InFlight {
    Op op;
    std::string key, value;
    int64_t lease = 0; // the lease in force when the call was made
  };

  void pump(Time now);
  void request(Op op, std::string path, std::string body, std::string key = {},
               std::string value = {});
  void failed(const InFlight& call, const std::string& error, Time now);
  void succeeded(Time now);
  void lease_lost();
  void apply_policy(const KeyValue& kv);
  void on_range(const RangeResult& r);
  void on_watch_message(const WatchMessage& m);
  bool key_in_flight(const std::string& key) const;

  ClusterConfig config_;
  bool started_ = false;
  bool up_ = false;
  bool reported_down_ = false;
  bool retry_pending_ = false; // a call failed: nothing new until retry_at_
  Time retry_at_{};
  std::chrono::milliseconds backoff_{0};

  int64_t lease_ = 0;
  Time next_keepalive_{};
  std::map<std::string, std::string> desired_; // lease-bound keys -> values
  std::map<std::string, std::string> written_; // what etcd holds of them, as far as we know
  std::map<std::string, Time> due_;            // homes not to be written before then
  std::set<std::string> dirty_;                // keys where written_ may differ from desired_
  size_t homes_ = 0;
  std::optional<std::string> policy_to_publish_;

  bool synced_ = false;     // the watched range was read at revision_
  bool watch_open_ = false; // a watch was handed out and has not ended
  bool watch_wanted_ = false;
  int64_t revision_ = 0;
  WatchDecoder watch_;
  int64_t policy_revision_ = 0;
  std::map<std::string, std::string> members_;

  uint64_t next_id_ = 1;
  std::map<uint64_t, InFlight> in_flight_;
  std::set<std::string> keys_in_flight_; // the keys of in_flight_
  std::vector<Request> requests_;
  std::vector<Event> events_;
  ClusterStats stats_;
};

} // namespace ztna::store
