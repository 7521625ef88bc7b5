// One round of connectivity checks (RFC 8445 §6.1, §7), simplified for a daemon that sends
// everything from ONE UDP socket bound to a wildcard address (DESIGN D1, D4).
//
// Every check leaves from that socket, so the local side of a pair is always the socket; a
// server-reflexive local candidate is pruned to its base (§6.1.2.4), which is the same socket. So
// there is one pair per remote candidate whose address family we have, and the pair's `local` is
// our highest-priority candidate of that family (used for the pair priority and for display).
// Remote relay candidates are never checked: the relay path is the session's fallback already.
//
// STUN-agnostic and sans-IO: poll() hands out the checks to encode and send; the caller feeds
// back the answers and the authenticated requests it receives, with the current time.
#pragma once

#include "ice/candidate.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace ztna::ice {

// RFC 8445 §6.1.2.6.
enum class PairState { Frozen, Waiting, InProgress, Succeeded, Failed };
const char* to_string(PairState s);

// Signaling is untrusted input: these bound the pairs it can make us check, so the number of
// requests a round can send is bounded (pairs * max_transmissions, plus triggered checks paced
// by Ta).
constexpr size_t kMaxRemoteCandidates = 32; // signaled; extra ones are ignored
constexpr size_t kMaxPeerReflexive = 8;     // learned from incoming requests (§7.3.1.3)

struct CheckListConfig {
  bool controlling = false;                       // the agent is controlling and nominates (§7.1)
  std::chrono::milliseconds pacing{5};            // Ta between new checks (§14.2)
  std::chrono::milliseconds initial_rto{50};      // retransmit timer, doubles each time (§14.3)
  int max_transmissions = 7;                      // 50+100+...+3200 ms = 6.35 s, then Failed
  std::chrono::milliseconds nomination_delay{25}; // after the first success, wait for better pairs
  // Controlling side: every check carries USE-CANDIDATE and the first pair to succeed is the
  // selected one (aggressive nomination, RFC 5245 §8.1.1.2). It saves the nomination round trip
  // and the wait for better pairs; the pair that answers first is the fastest one anyway, and the
  // QUIC migration that follows validates the path again.
  bool aggressive_nomination = false;
  std::function<void(std::span<uint8_t>)> random; // fills transaction IDs; required
};

struct CandidatePair {
  Candidate local;
  Candidate remote;
  uint64_t priority = 0;
  PairState state = PairState::Frozen;
  bool nominated = false;
  int transmissions = 0;                        // requests sent on this pair, all checks together
  std::optional<std::chrono::microseconds> rtt; // of the first successful check
  std::optional<Address> mapped;                // what the peer saw of us (XOR-MAPPED-ADDRESS)
};

// A Binding request the caller must encode and send to `to` now.
struct Check {
  std::array<uint8_t, 12> transaction_id;
  Address to;
  uint32_t priority; // PRIORITY attribute: our prflx priority for this family (§7.1.1)
  bool use_candidate;
};

class CheckList {
public:
  // Throws std::invalid_argument without config.random.
  explicit CheckList(CheckListConfig config);

  // Our candidates. Call before start(); a later call re-pairs with the new set.
  void set_local_candidates(std::vector<Candidate> locals);
  // The peer's candidates (signaling). Dedups by address, ignores unknown types and addresses
  // the filter refuses (may_probe: loopback, link-local, metadata...), keeps at most
  // kMaxRemoteCandidates. Can be called again (trickle). The path manager filters (and counts)
  // before it gets here; the check list refuses them again, so no caller can make it probe one.
  void add_remote_candidates(std::span<const Candidate> remotes);
  // The coordinated start (simultaneous open): pairs become Waiting and checks begin.
  void start(Timestamp now);
  bool started() const { return started_; }

  // The next check due now: retransmissions when their RTO expires (§14.3); new checks at most
  // one per Ta (§14.2), nomination first, then triggered checks (§7.2.5.4), then the
  // highest-priority Waiting pair (§6.1.4.2). Call until nullopt.
  std::optional<Check> poll(Timestamp now);
  // When poll() may have something again; kNever if nothing is pending.
  Timestamp next_timeout() const;

  // A success response to a transaction we sent, received from `from` with XOR-MAPPED-ADDRESS
  // `mapped`. Any transmission of a pair's check counts, also one a retransmission superseded.
  // `from` must equal the request's destination, else the check fails (§7.2.5.2.1). Returns false
  // if the transaction is unknown (the caller counts it); true, changing nothing, once the list
  // has ended.
  bool on_success_response(std::span<const uint8_t, 12> transaction_id, const Address& from,
                           const Address& mapped, Timestamp now);
  // An error response: the pair fails (§7.2.5.2.4; we never resolve a role conflict, the roles
  // are fixed by who is the agent). Same return value as on_success_response().
  bool on_error_response(std::span<const uint8_t, 12> transaction_id, Timestamp now);
  // An authenticated request arrived from `from` (§7.3): learns a peer-reflexive remote
  // candidate with `priority` if `from` is new and may_probe() allows it (§7.3.1.3), schedules a
  // triggered check (§7.3.1.4), and on the controlled side records the nomination when
  // use_candidate is set (§7.3.1.5).
  void on_request(const Address& from, uint32_t priority, bool use_candidate, Timestamp now);

  // Controlling: the nominated pair once its USE-CANDIDATE check succeeded. Controlled: the pair
  // the peer nominated, once our own check on it succeeded. nullptr until then. The pointer is
  // valid until the next call that changes the list.
  const CandidatePair* selected() const;
  // Started, every pair Failed (or none to check), no selection: this round found no path.
  bool failed() const;
  // Once selected() or failed(), the list is final: it sends nothing and changes nothing more.
  bool ended() const { return selected() != nullptr || failed(); }

  const std::vector<CandidatePair>& pairs() const { return pairs_; } // highest priority first
  // Our addresses as the peer saw them (XOR-MAPPED-ADDRESS) that are not local candidates
  // (§7.2.5.3.1), with the priority our requests carried.
  std::vector<Candidate> local_peer_reflexive() const;

private:
  using TransactionId = std::array<uint8_t, 12>;
  struct Sent {
    TransactionId tid;
    Timestamp at;
    bool use_candidate;
  };
  // A pair's transaction state, which CandidatePair does not show. Keyed by the remote address.
  struct Track {
    Address remote;
    std::deque<Sent> sent;            // newest last, bounded
    int attempts = 0;                 // transmissions of the check in flight
    Timestamp rto = 0;                // ns, the wait after the latest transmission
    Timestamp retransmit_at = kNever; // kNever: no check in flight
    bool nominating = false;          // the check in flight carries USE-CANDIDATE
    bool peer_nominated = false;      // controlled: the peer sent USE-CANDIDATE on this pair
  };
  struct Hit {
    CandidatePair* pair;
    Track* track;
    const Sent* sent;
  };

  const Candidate* best_local(bool v6) const;
  void add_pair(const Candidate& remote);
  void sort_pairs();
  bool known_remote(const Address& a) const;
  CandidatePair* pair_for(const Address& remote);
  Track& track_for(const Address& remote);
  std::optional<Hit> find(std::span<const uint8_t, 12> tid);
  Check transmit(CandidatePair& pair, Track& track, Timestamp now);
  Check begin_check(CandidatePair& pair, bool use_candidate, Timestamp now);
  void fail(CandidatePair& pair, Track& track);
  void succeed(CandidatePair& pair, Track& track, Timestamp now);
  void trigger(CandidatePair& pair, Track& track);
  uint32_t request_priority(const CandidatePair& pair) const;
  Timestamp pace_at() const;
  bool has_paced_work() const;
  // Controlling: the index in pairs_ of the pair to nominate and the time nomination may begin
  // (kNever: not now, nor at any known time).
  std::pair<size_t, Timestamp> nomination() const;

  CheckListConfig config_;
  std::vector<Candidate> locals_;
  std::vector<Candidate> remotes_; // signaled and learned, in arrival order
  size_t signaled_ = 0;
  size_t learned_ = 0;
  std::vector<CandidatePair> pairs_;
  std::vector<Track> tracks_;
  std::deque<Address> triggered_; // FIFO of remote addresses (§6.1.4.1)
  bool started_ = false;
  Timestamp last_paced_ = 0;
  bool paced_any_ = false;
  std::optional<Timestamp> first_success_;
};

} // namespace ztna::ice
