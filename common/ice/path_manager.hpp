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
    return c;
  }(); // `controlling` and `random` are set here
  ConsentConfig consent;                          // `random` is set here
  std::chrono::milliseconds retry_initial{1000};  // upgrade retries after a failure...
  std::chrono::milliseconds retry_max{8000};      // ...double up to this
};

struct PathCounters {
  uint64_t rounds = 0;    // rounds of checks started
  uint64_t upgrades = 0;  // moves from relay to a direct path
  uint64_t fallbacks = 0; // moves from a dead direct path back to the relay
  uint64_t checks_sent = 0;
  uint64_t checks_answered = 0;      // authenticated requests we answered
  uint64_t stun_unauthenticated = 0; // bad USERNAME or MESSAGE-INTEGRITY: dropped
  uint64_t consent_requests = 0;
};

class PathManager {
public:
  enum class StunResult { NotMine, Handled, Unauthenticated };

  PathManager(PathManagerConfig config, PathEvents& events, Timestamp now);

  // Our candidates: host candidates and the server-reflexive address the intermediate reports.
  // The first call on the controlling side starts round 1; a later change starts a new round
  // (checks restart when a peer's candidates change).
  void set_local_candidates(std::vector<Candidate> candidates, Timestamp now);
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
  Timestamp next_timeout() const;

  // --- for status ---
  const std::string& local_ufrag() const { return local_ufrag_; }
  ActivePath active() const { return active_; }
  const char* phase() const;
  uint32_t generation() const { return generation_; }
  const std::vector<Candidate>& local_candidates() const { return locals_; }
  std::vector<Candidate> remote_candidates() const;
  const CheckList* checks() const { return checks_.get(); }
  std::optional<Address> direct_remote() const { return direct_remote_; }
  std::optional<std::chrono::microseconds> direct_rtt() const;
  // Session start to the first direct path validated (carrying data).
  std::optional<std::chrono::microseconds> time_to_direct() const { return time_to_direct_; }
  const PathCounters& counters() const { return counters_; }

private:
  using TransactionId = std::array<uint8_t, 12>;

  void start_round(Timestamp now, const std::string& why);
  void new_check_list();
  void send_own_candidates();
  void send_request(const Address& to, const TransactionId& tid, uint32_t priority,
                    bool use_candidate);
  void remember(const TransactionId& tid);
  bool is_outstanding(std::span<const uint8_t, 12> tid) const;
  void drive_checks(Timestamp now);
  void drive_consent(Timestamp now);
  void conclude_round(Timestamp now);
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
  PathCounters counters_;
};

} // namespace ztna::ice
