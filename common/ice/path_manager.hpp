// The path layer beneath a session's QUIC connection (DESIGN D3, D4): it gathers nothing and
// sends nothing itself, but decides. Given our candidates, the peer's (through signaling) and
// the STUN datagrams that arrive, it runs rounds of connectivity checks, and on the controlling
// side (the agent) moves the session onto a validated direct pair, watches that pair with
// consent checks, falls back to the relay when it dies and retries the upgrade with backoff for
// as long as the session lives.
//
// Sans-IO: the owner feeds events with the current time, calls handle_timeout() at
// next_timeout(), and carries out what PathEvents asks for.
#pragma once

#include "control/backoff.hpp"
#include "ice/candidate.hpp"
#include "ice/check_list.hpp"
#include "ice/consent.hpp"
#include "wire/control_message.hpp"
#include "wire/stun_message.hpp"

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ztna::ice {

// What the path manager asks its owner to do.
class PathEvents {
public:
  virtual ~PathEvents() = default;
  virtual void send_stun(const Address& to, std::span<const uint8_t> datagram) = 0;
  // Signaling: to the intermediate, which forwards it to the session's other end.
  virtual void send_candidates(const wire::Candidates& m) = 0;
  // Controlling side only: migrate the QUIC connection onto the direct path to `remote` (after
  // QUIC path validation), or back onto the relay (at once). `why` is one log line.
  virtual void use_direct(const Address& remote, const std::string& why) = 0;
  virtual void use_relay(const std::string& why) = 0;
  // Something worth one log line that changes no path (a round failed, checks restart...).
  virtual void note(const std::string& line) = 0;
};

// Bounds on what one session's peer can make us send (docs/security.md). Signaling is untrusted:
// the other end of an authorized session chooses the candidates, and an end may be hostile.
//
// Where checks go. Candidates that fail the address filter (probe_refusal(): loopback,
// link-local, multicast, unspecified, broadcast, cloud metadata, port 0) are dropped when they
// arrive, and so are requests from such sources (no answer, no peer-reflexive candidate). Checks
// go only to the current round's remote candidates (signalled or peer-reflexive), consent only
// to the selected pair, and answers only to the source of an authenticated request.
//
// How many rounds. A new round (ours, or the peer's that we join) starts at most once per
// kMinRoundInterval after the previous one and at most kMaxRoundsPerMinute times in any 60 s;
// the very first round starts at once. A round that comes too soon waits: ours is started, or
// the peer's newest generation joined, as soon as the limit allows. A peer that sends new
// generations in a loop therefore gets one round per second at most, whatever its rate.
constexpr std::chrono::milliseconds kMinRoundInterval{1000};
constexpr size_t kMaxRoundsPerMinute = 20;
//
// How many checks per round. A round has at most kMaxRemoteCandidates (32) signalled and
// kMaxPeerReflexive (8) learned pairs, each checked with max_transmissions (6) requests; the
// nomination and triggered checks come on top. kMaxChecksPerRound caps the total: 40 pairs x 8.
// Checks beyond it are not sent (checks_over_round_cap). So a session sends at most 320 checks
// per round and 20 x 320 = 6400 checks (about 640 kB) per minute, of which the budget below lets
// only a small part go to addresses that have not answered.
constexpr size_t kMaxChecksPerRound = (kMaxRemoteCandidates + kMaxPeerReflexive) * 8;
//
// How many bytes toward addresses that have not answered (anti-amplification, RFC 9000 §8.1
// applied to signaling). An address is validated once an authenticated STUN response or request
// arrived from exactly it. A check toward any other address spends its size from a per-session
// budget of kAmplificationFactor x the frame size (wire::encoded_size) of every Candidates
// message received from the peer; a check that does not fit is not sent (checks_over_budget).
// Consent checks on the selected pair, and answers to authenticated requests, do not spend.
constexpr uint64_t kAmplificationFactor = 3;
// The largest check we send, in bytes: 20 (header) + USERNAME "<8 chars>:<8 chars>" padded to 20
// (24) + PRIORITY (8) + USE-CANDIDATE (4) + ICE-CONTROLLING (12) + MESSAGE-INTEGRITY (24) +
// FINGERPRINT (8) = 100. Both ends of a session run our code, so both ufrags have 8 characters.
constexpr size_t kLargestCheck = 100;
// Addresses remembered as validated; beyond it the oldest is forgotten (and spends again).
constexpr size_t kMaxValidated = 64;

// The padding our own Candidates message carries so that the peer's budget covers the checks it
// will send to our candidates: candidates x max_transmissions x kLargestCheck bytes of checks
// need a frame of a third of that. E.g. 3 candidates: 3 x 6 x 100 = 1800 bytes of checks, a
// 600-byte frame; 16 (wire::kMaxCandidates): 9600 bytes, a 3200-byte frame. Never more than
// wire::kMaxControlPayload allows, never less than 0.
uint16_t candidate_padding(const wire::Candidates& m, int max_transmissions);

// Our round-1 candidates and fresh credentials (RFC 8445 §5.3), made before the session exists:
// the agent sends them with its session request. Session 0, generation 1, padded as every
// Candidates message of ours (candidate_padding). Candidates the address filter refuses are left
// out, and at most wire::kMaxCandidates are offered.
wire::Candidates make_offer(std::vector<Candidate> locals,
                            const std::function<void(std::span<uint8_t>)>& random,
                            int max_transmissions, uint8_t nat = 0);

enum class ActivePath { Relay, Direct };
const char* to_string(ActivePath p);

struct PathManagerConfig {
  bool controlling = false; // the agent: nominates and migrates
  uint64_t session_id = 0;
  std::function<void(std::span<uint8_t>)> random; // required
  // Six transmissions (50 ms doubling): a round fails after 3.15 s and the agent retries with
  // backoff, so a lost check costs little and a doomed round ends soon.
  CheckListConfig checks = [] {
    CheckListConfig c;
    c.max_transmissions = 6;
    c.aggressive_nomination = true;
    return c;
  }(); // `controlling` and `random` are set here
  // Controlling side: the session moves onto a pair as soon as its check succeeded and the
  // handshake is confirmed, and QUIC validates the path while data already flows on it
  // (ngtcp2_conn_initiate_immediate_migration); a validation that fails takes the session back
  // to the relay. The authenticated check proved the path both ways a moment before, so the round
  // trip of a validation before the move is saved. Off: the move waits for the validation.
  bool immediate_migration = true;
  ConsentConfig consent; // `random` is set here
  // Controlling side: round 1 was offered already, with the session request (OpenSession,
  // docs/protocol.md §6.1): its credentials and candidates. The first set_local_candidates()
  // begins round 1 without signaling it again.
  std::optional<wire::Candidates> offer;
  // What our NAT does (wire::Candidates::nat, from nat::to_wire): signalled with our candidates.
  uint8_t local_nat = 0;
  std::chrono::milliseconds retry_initial{1000}; // upgrade retries after a failure...
  std::chrono::milliseconds retry_max{8000};     // ...double up to this
};

struct PathCounters {
  uint64_t rounds = 0;    // rounds of checks started
  uint64_t upgrades = 0;  // moves from relay to a direct path
  uint64_t fallbacks = 0; // moves from a dead direct path back to the relay
  uint64_t checks_sent = 0;
  uint64_t checks_answered = 0;      // authenticated requests we answered
  uint64_t stun_unauthenticated = 0; // bad USERNAME or MESSAGE-INTEGRITY: dropped
  uint64_t consent_requests = 0;
  // The address filter: the peer's candidates dropped on arrival, and authenticated requests
  // from such addresses (dropped unanswered), in all and by reason (index: ProbeRefusal).
  uint64_t candidates_refused = 0;
  std::array<uint64_t, kProbeRefusalKinds> refused_by_reason{};
  uint64_t checks_over_budget = 0;    // not sent: the anti-amplification budget was spent
  uint64_t checks_over_round_cap = 0; // not sent: kMaxChecksPerRound reached
  uint64_t rounds_deferred = 0;       // rounds that had to wait for the round rate limit
  // The peer's IPv4 candidates not checked because both NATs are hard (map per destination with
  // unpredictable ports): no IPv4 path through them can exist.
  uint64_t candidates_unreachable = 0;
  uint64_t signaling_bytes = 0;   // frame bytes of the peer's Candidates received
  uint64_t unvalidated_bytes = 0; // check bytes sent toward unvalidated addresses
};

class PathManager {
public:
  enum class StunResult { NotMine, Handled, Unauthenticated };

  PathManager(PathManagerConfig config, PathEvents& events, Timestamp now);

  // Our candidates: host candidates and the server-reflexive address the intermediate reports.
  // The first call on the controlling side starts round 1; a later change starts a new round
  // (checks restart when a peer's candidates change).
  // Candidates the address filter refuses are left out: we never offer them.
  void set_local_candidates(std::vector<Candidate> candidates, Timestamp now);
  // The peer's candidates for a round. Counts the frame toward the check budget, drops (counts,
  // and notes once per round) the candidates the address filter refuses. A newer generation
  // opens a round on our side too: at once, or when the round rate limit allows.
  void on_candidates(const wire::Candidates& m, Timestamp now);
  void on_start_checks(uint32_t generation, Timestamp now);
  // A parsed STUN datagram. Requests must already be matched to this session by USERNAME;
  // responses are recognised here by transaction ID (NotMine if unknown).
  StunResult on_stun(const Address& from, std::span<const uint8_t> datagram,
                     const wire::StunMessage& m, Timestamp now);
  // QUIC told us: the handshake is confirmed (migration allowed), or a path was validated.
  void on_handshake_confirmed(Timestamp now);
  void on_path_validated(bool direct, bool success, Timestamp now);

  void handle_timeout(Timestamp now);
  // Our NAT was measured (again): signalled with our next Candidates.
  void set_local_nat(uint8_t nat) { config_.local_nat = nat; }
  Timestamp next_timeout() const;

  // --- for status ---
  const std::string& local_ufrag() const { return local_ufrag_; }
  // The password our Candidates carry: the peer's requests are keyed with it (tests, fuzzing).
  const std::string& local_password() const { return local_password_; }
  ActivePath active() const { return active_; }
  const char* phase() const;
  uint32_t generation() const { return generation_; }
  const std::vector<Candidate>& local_candidates() const { return locals_; }
  std::vector<Candidate> remote_candidates() const;
  const CheckList* checks() const { return checks_.get(); }
  std::optional<Address> direct_remote() const { return direct_remote_; }
  std::optional<std::chrono::microseconds> direct_rtt() const;
  // Session start to the first move onto a direct path that carried data: the move itself with
  // immediate migration, else its validation.
  std::optional<std::chrono::microseconds> time_to_direct() const { return time_to_direct_; }
  // Session start to the first direct path validated by QUIC.
  std::optional<std::chrono::microseconds> time_to_validated() const { return time_to_validated_; }
  const PathCounters& counters() const { return counters_; }
  // Check bytes we may still send toward unvalidated addresses.
  uint64_t budget_left() const;
  bool is_validated(const Address& a) const;
  // When the next round may start (0: now).
  Timestamp next_round_at() const;

private:
  using TransactionId = std::array<uint8_t, 12>;

  void start_round(Timestamp now, const std::string& why);
  void begin_round(Timestamp now, uint32_t generation);
  void join_round(std::vector<wire::Candidates> msgs, Timestamp now);
  void run_pending_round(Timestamp now);
  void add_remote(const wire::Candidates& m);
  void new_check_list();
  void send_own_candidates();
  // false if the check was not sent (refused address, over budget).
  bool send_request(const Address& to, const TransactionId& tid, uint32_t priority,
                    bool use_candidate, bool consent);
  void validate(const Address& a);
  void refuse(ProbeRefusal why);
  void remember(const TransactionId& tid);
  bool is_outstanding(std::span<const uint8_t, 12> tid) const;
  void drive_checks(Timestamp now);
  void drive_consent(Timestamp now);
  void conclude_round(Timestamp now);
  // Both NATs map per destination with ports neither side can predict, and the two ends are not
  // behind the same NAT: IPv4 checks through them cannot succeed (docs/nat-compatibility.md).
  bool ipv4_hopeless(const wire::Candidates& m) const;
  void schedule_retry(Timestamp now);
  uint32_t random_u32();

  PathManagerConfig config_;
  PathEvents& events_;
  Timestamp created_;
  std::string local_ufrag_, local_password_;
  std::string remote_ufrag_, remote_password_;
  uint64_t tie_breaker_ = 0;
  std::vector<Candidate> locals_;
  std::vector<Candidate> remotes_; // as signalled in the current round
  uint32_t generation_ = 0;
  std::unique_ptr<CheckList> checks_;
  bool round_concluded_ = false;
  bool confirmed_ = false;
  ActivePath active_ = ActivePath::Relay;
  std::optional<Address> migrating_to_;
  std::optional<Address> direct_remote_;
  std::unique_ptr<Consent> consent_;
  Backoff retry_;
  Timestamp retry_at_ = kNever;
  std::deque<TransactionId> outstanding_; // our recent transaction IDs, newest last
  std::optional<std::chrono::microseconds> time_to_direct_;
  std::optional<std::chrono::microseconds> time_to_validated_;
  std::optional<std::chrono::microseconds> moved_at_; // the latest immediate move, from start
  PathCounters counters_;
  // Anti-amplification: addresses proven to be the peer's, oldest first.
  std::deque<Address> validated_;
  // Round rate limit: start times of the rounds of the last minute, oldest first.
  std::deque<Timestamp> round_starts_;
  std::optional<std::string> pending_own_;     // our round waits for the limit (why)
  std::vector<wire::Candidates> pending_join_; // the peer's newest round waits for the limit
  uint32_t refusals_noted_ = 0;                // the last generation whose refusals we noted
  uint8_t remote_nat_ = 0;                     // the peer's, from its latest Candidates
  bool hopeless_round_ = false; // this round's IPv4 candidates were dropped as unreachable
  size_t checks_this_round_ = 0;
};

} // namespace ztna::ice
