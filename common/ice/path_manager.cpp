#include "ice/path_manager.hpp"

#include "nat/nat_discovery.hpp"

#include <algorithm>
#include <cstdio>

namespace ztna::ice {

namespace {

constexpr Timestamp kNone = UINT64_MAX;
constexpr size_t kMaxOutstanding = 256;
constexpr Timestamp kMs = 1'000'000;

Timestamp to_ns(std::chrono::milliseconds d) {
  return static_cast<Timestamp>(d.count()) * kMs;
}

// ice-chars only (RFC 8445 §5.3): letters and digits are enough.
std::string random_ice_string(size_t n, const std::function<void(std::span<uint8_t>)>& random) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::vector<uint8_t> bytes(n);
  random(bytes);
  std::string s;
  for (auto b : bytes)
    s.push_back(kChars[b % (sizeof kChars - 1)]);
  return s;
}

std::string ms_text(std::chrono::microseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

std::string describe(const Candidate& c) {
  return std::string(to_string(c.type)) + " " + c.address.to_string();
}

constexpr Timestamp kMinute = 60'000 * kMs;
// The refused addresses one note shows; the rest are only counted.
constexpr size_t kRefusalsShown = 3;
// Candidates messages of one generation kept while its round waits for the rate limit.
constexpr size_t kMaxPendingMessages = 4;

} // namespace

uint16_t candidate_padding(const wire::Candidates& m, int max_transmissions) {
  const size_t frame = wire::encoded_size(m) - m.padding;
  const size_t transmissions = max_transmissions > 0 ? static_cast<size_t>(max_transmissions) : 0;
  const size_t checks = m.candidates.size() * transmissions * kLargestCheck;
  const size_t want = (checks + kAmplificationFactor - 1) / kAmplificationFactor;
  if (want <= frame || frame >= wire::kMaxControlFrame) return 0;
  const size_t pad = std::min(want - frame, wire::kMaxControlFrame - frame);
  return static_cast<uint16_t>(std::min<size_t>(pad, UINT16_MAX));
}

wire::Candidates make_offer(std::vector<Candidate> locals,
                            const std::function<void(std::span<uint8_t>)>& random,
                            int max_transmissions, uint8_t nat) {
  wire::Candidates m{0, 1, random_ice_string(8, random), random_ice_string(24, random), {}};
  m.nat = nat;
  for (const auto& c : locals) {
    if (m.candidates.size() == wire::kMaxCandidates) break;
    if (may_probe(c.address))
      m.candidates.push_back({static_cast<uint8_t>(c.type), c.priority, c.address});
  }
  m.padding = candidate_padding(m, max_transmissions);
  return m;
}

const char* to_string(ActivePath p) {
  return p == ActivePath::Direct ? "direct" : "relay";
}

PathManager::PathManager(PathManagerConfig config, PathEvents& events, Timestamp now)
    : config_(std::move(config)), events_(events), created_(now),
      retry_(config_.retry_initial, config_.retry_max) {
  config_.checks.controlling = config_.controlling;
  config_.checks.random = config_.random;
  config_.consent.random = config_.random;
  if (config_.offer && config_.controlling && !config_.offer->candidates.empty()) {
    local_ufrag_ = config_.offer->ufrag;
    local_password_ = config_.offer->password;
  } else {
    config_.offer.reset();
    local_ufrag_ = random_ice_string(8, config_.random);
    local_password_ = random_ice_string(24, config_.random);
  }
  std::array<uint8_t, 8> tb;
  config_.random(tb);
  for (auto b : tb)
    tie_breaker_ = tie_breaker_ << 8 | b;
}

uint32_t PathManager::random_u32() {
  std::array<uint8_t, 4> b;
  config_.random(b);
  return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
}

void PathManager::set_local_candidates(std::vector<Candidate> candidates, Timestamp now) {
  // We never offer what the peer must refuse (a daemon on loopback has no candidate at all).
  std::erase_if(candidates, [](const Candidate& c) { return !may_probe(c.address); });
  if (candidates == locals_) return;
  const bool first = locals_.empty() && generation_ == 0;
  if (first && config_.offer) {
    // Round 1 went out with the session request: begin it with the candidates offered there.
    for (const auto& e : config_.offer->candidates)
      locals_.push_back({static_cast<CandidateType>(e.type), e.address, e.priority});
    begin_round(now, 1);
    config_.offer.reset();
    if (candidates == locals_) return;
    locals_ = std::move(candidates);
    return start_round(now, "local candidates changed since the request");
  }
  locals_ = std::move(candidates);
  if (first && !config_.controlling) return; // the connector answers the agent's first round
  if (first) return start_round(now, "session start");
  // RFC 8445 §9 (ICE restart): our candidates changed, so every pair must be checked again.
  start_round(now, "local candidates changed");
}

Timestamp PathManager::next_round_at() const {
  if (round_starts_.empty()) return 0; // the very first round: at once
  Timestamp t = round_starts_.back() + to_ns(kMinRoundInterval);
  if (round_starts_.size() >= kMaxRoundsPerMinute) t = std::max(t, round_starts_.front() + kMinute);
  return t;
}

void PathManager::start_round(Timestamp now, const std::string& why) {
  if (locals_.empty() || generation_ == UINT32_MAX) return;
  retry_at_ = kNone;
  // A round of the peer's is waiting for the limit: joining it sends our candidates anyway.
  if (!pending_join_.empty()) return;
  if (now < next_round_at()) {
    if (!pending_own_) counters_.rounds_deferred++;
    pending_own_ = why;
    return;
  }
  pending_own_.reset();
  begin_round(now, generation_ + 1);
  send_own_candidates();
  if (generation_ > 1) events_.note("checks round " + std::to_string(generation_) + ": " + why);
}

void PathManager::begin_round(Timestamp now, uint32_t generation) {
  generation_ = generation;
  counters_.rounds++;
  retry_at_ = kNone;
  round_starts_.push_back(now);
  while (round_starts_.size() > kMaxRoundsPerMinute)
    round_starts_.pop_front();
  checks_this_round_ = 0;
  new_check_list();
}

void PathManager::join_round(std::vector<wire::Candidates> msgs, Timestamp now) {
  // The peer opened a round: join it with our own candidates (a new check list). Our own
  // waiting round, if any, is this one now.
  pending_own_.reset();
  pending_join_.clear();
  begin_round(now, msgs.front().generation);
  if (!locals_.empty()) send_own_candidates();
  for (const auto& m : msgs)
    add_remote(m);
}

void PathManager::run_pending_round(Timestamp now) {
  if (now < next_round_at()) return;
  if (!pending_join_.empty()) {
    auto msgs = std::move(pending_join_);
    pending_join_.clear();
    if (msgs.front().generation > generation_) join_round(std::move(msgs), now);
    return;
  }
  if (pending_own_) {
    const std::string why = *pending_own_;
    pending_own_.reset();
    start_round(now, why);
  }
}

void PathManager::new_check_list() {
  checks_ = std::make_unique<CheckList>(config_.checks);
  checks_->set_local_candidates(locals_);
  remotes_.clear();
  round_concluded_ = false;
  hopeless_round_ = false;
}

void PathManager::send_own_candidates() {
  wire::Candidates m{config_.session_id, generation_, local_ufrag_, local_password_, {}};
  m.nat = config_.local_nat;
  for (const auto& c : locals_) {
    if (m.candidates.size() == wire::kMaxCandidates) break;
    m.candidates.push_back({static_cast<uint8_t>(c.type), c.priority, c.address});
  }
  // Buys the checks the peer will send to our candidates (see kAmplificationFactor).
  m.padding = candidate_padding(m, config_.checks.max_transmissions);
  events_.send_candidates(m);
}

void PathManager::on_candidates(const wire::Candidates& m, Timestamp now) {
  // Whatever becomes of it, the peer sent these bytes: they fund our checks (RFC 9000 §8.1).
  counters_.signaling_bytes += wire::encoded_size(m);
  if (m.generation < generation_) return; // a stale round
  if (m.generation == generation_) {
    if (generation_ == 0) return; // no round yet: the peer's generations start at 1
    return add_remote(m);         // more candidates for the current round
  }
  // A newer round of the peer's. If one is waiting already, keep the newest only.
  if (!pending_join_.empty()) {
    const uint32_t waiting = pending_join_.front().generation;
    if (m.generation < waiting) return;
    if (m.generation > waiting) pending_join_.clear();
    if (pending_join_.size() < kMaxPendingMessages) pending_join_.push_back(m);
    return run_pending_round(now);
  }
  if (now < next_round_at()) {
    counters_.rounds_deferred++;
    pending_join_.push_back(m);
    return;
  }
  join_round({m}, now);
}

void PathManager::refuse(ProbeRefusal why) {
  counters_.candidates_refused++;
  counters_.refused_by_reason[static_cast<size_t>(why)]++;
}

bool PathManager::ipv4_hopeless(const wire::Candidates& m) const {
  if (!nat::hard_on_wire(config_.local_nat) || !nat::hard_on_wire(m.nat)) return false;
  // Behind the same NAT (the same reflexive IP), host candidates meet on the LAN.
  for (const auto& ours : locals_) {
    if (ours.type != CandidateType::ServerReflexive) continue;
    for (const auto& theirs : m.candidates)
      if (static_cast<CandidateType>(theirs.type) == CandidateType::ServerReflexive &&
          theirs.address.ip_bytes() == ours.address.ip_bytes())
        return false;
  }
  return true;
}

void PathManager::add_remote(const wire::Candidates& m) {
  if (!checks_) new_check_list();
  remote_ufrag_ = m.ufrag;
  remote_password_ = m.password;
  remote_nat_ = m.nat;
  const bool hopeless = ipv4_hopeless(m);
  std::vector<Candidate> remotes;
  size_t refused = 0, unreachable = 0;
  std::string shown;
  for (const auto& e : m.candidates) {
    const Candidate c{static_cast<CandidateType>(e.type), e.address, e.priority};
    if (hopeless && !c.address.is_v6()) {
      unreachable++;
      continue;
    }
    if (const auto why = probe_refusal(c.address); why != ProbeRefusal::None) {
      refuse(why);
      if (refused < kRefusalsShown)
        shown += std::string(refused ? ", " : "") + to_string(why) + " " + c.address.to_string();
      refused++;
      continue;
    }
    remotes.push_back(c);
  }
  if (refused > 0 && refusals_noted_ != generation_) {
    // One line per round: a peer cannot flood the log with its candidates.
    refusals_noted_ = generation_;
    if (refused > kRefusalsShown)
      shown += ", and " + std::to_string(refused - kRefusalsShown) + " more";
    events_.note("round " + std::to_string(generation_) + ": refused " + std::to_string(refused) +
                 " of the peer's " + std::to_string(m.candidates.size()) +
                 " candidates, which no check may go to (" + shown + ")");
  }
  if (unreachable > 0) {
    counters_.candidates_unreachable += unreachable;
    if (!hopeless_round_)
      events_.note("round " + std::to_string(generation_) + ": both ends are behind NATs that " +
                   "map per destination with unpredictable ports (ours: " +
                   nat::describe_wire(config_.local_nat) +
                   "; the peer's: " + nat::describe_wire(m.nat) + "): the peer's " +
                   std::to_string(unreachable) + " IPv4 candidate(s) are not checked");
    hopeless_round_ = true;
  }
  checks_->add_remote_candidates(remotes);
  for (const auto& c : remotes) {
    if (remotes_.size() >= kMaxRemoteCandidates) break;
    if (std::none_of(remotes_.begin(), remotes_.end(),
                     [&](const Candidate& r) { return r.address == c.address; }))
      remotes_.push_back(c);
  }
}

void PathManager::on_start_checks(uint32_t generation, Timestamp now) {
  if (generation != generation_ || !checks_ || checks_->started()) return;
  checks_->start(now);
  drive_checks(now);
}

bool PathManager::is_validated(const Address& a) const {
  return std::find(validated_.begin(), validated_.end(), a) != validated_.end();
}

void PathManager::validate(const Address& a) {
  if (!may_probe(a)) return;
  if (auto it = std::find(validated_.begin(), validated_.end(), a); it != validated_.end())
    validated_.erase(it); // refreshed: it becomes the newest
  validated_.push_back(a);
  if (validated_.size() > kMaxValidated) validated_.pop_front();
}

uint64_t PathManager::budget_left() const {
  const uint64_t budget = kAmplificationFactor * counters_.signaling_bytes;
  return budget > counters_.unvalidated_bytes ? budget - counters_.unvalidated_bytes : 0;
}

void PathManager::remember(const TransactionId& tid) {
  outstanding_.push_back(tid);
  if (outstanding_.size() > kMaxOutstanding) outstanding_.pop_front();
}

bool PathManager::is_outstanding(std::span<const uint8_t, 12> tid) const {
  return std::any_of(outstanding_.begin(), outstanding_.end(), [&](const TransactionId& t) {
    return std::equal(t.begin(), t.end(), tid.begin());
  });
}

bool PathManager::send_request(const Address& to, const TransactionId& tid, uint32_t priority,
                               bool use_candidate, bool consent) {
  if (remote_ufrag_.empty()) return false;
  if (!may_probe(to)) return false; // the check list never offers one; this is the last word
  wire::StunMessage req;
  req.cls = wire::StunClass::Request;
  req.transaction_id = tid;
  // RFC 8445 §7.2.2: USERNAME is "<receiver's ufrag>:<sender's ufrag>", keyed by the
  // receiver's password.
  req.username = remote_ufrag_ + ":" + local_ufrag_;
  req.priority = priority;
  req.use_candidate = use_candidate;
  if (config_.controlling)
    req.ice_controlling = tie_breaker_;
  else
    req.ice_controlled = tie_breaker_;
  const auto key =
      std::span(reinterpret_cast<const uint8_t*>(remote_password_.data()), remote_password_.size());
  const auto bytes = wire::encode_stun(req, key);
  // Consent goes to the selected pair, validated by the check that selected it: it never spends.
  if (!(consent && direct_remote_ == to) && !is_validated(to)) {
    if (bytes.size() > budget_left()) {
      counters_.checks_over_budget++;
      return false;
    }
    counters_.unvalidated_bytes += bytes.size();
  }
  remember(tid);
  events_.send_stun(to, bytes);
  return true;
}

PathManager::StunResult PathManager::on_stun(const Address& from, std::span<const uint8_t> datagram,
                                             const wire::StunMessage& m, Timestamp now) {
  auto key_of = [](const std::string& pw) {
    return std::span(reinterpret_cast<const uint8_t*>(pw.data()), pw.size());
  };
  if (m.cls == wire::StunClass::Request) {
    // RFC 8445 §7.3: authenticate with our own password, answer from where it came.
    if (!m.username || m.username->rfind(local_ufrag_ + ":", 0) != 0) return StunResult::NotMine;
    if (!wire::verify_stun_integrity(datagram, key_of(local_password_))) {
      counters_.stun_unauthenticated++;
      return StunResult::Unauthenticated;
    }
    // The same filter as for signalled candidates: no answer, no peer-reflexive candidate.
    if (const auto why = probe_refusal(from); why != ProbeRefusal::None) {
      refuse(why);
      return StunResult::Handled;
    }
    validate(from); // it knows our password and receives at this address
    wire::StunMessage resp;
    resp.cls = wire::StunClass::SuccessResponse;
    resp.transaction_id = m.transaction_id;
    resp.xor_mapped_address = from;
    events_.send_stun(from, wire::encode_stun(resp, key_of(local_password_)));
    counters_.checks_answered++;
    if (checks_ && m.priority) checks_->on_request(from, *m.priority, m.use_candidate, now);
    drive_checks(now);
    return StunResult::Handled;
  }
  if (m.cls != wire::StunClass::SuccessResponse && m.cls != wire::StunClass::ErrorResponse)
    return StunResult::NotMine;
  const std::span<const uint8_t, 12> tid(m.transaction_id);
  if (!is_outstanding(tid)) return StunResult::NotMine;
  if (remote_password_.empty() ||
      !wire::verify_stun_integrity(datagram, key_of(remote_password_))) {
    counters_.stun_unauthenticated++;
    return StunResult::Unauthenticated;
  }
  validate(from); // it answered a transaction ID only the receiver of our request could know
  if (consent_ && m.cls == wire::StunClass::SuccessResponse && consent_->on_response(tid, now))
    return StunResult::Handled;
  if (checks_) {
    if (m.cls == wire::StunClass::ErrorResponse)
      checks_->on_error_response(tid, now);
    else if (m.xor_mapped_address)
      checks_->on_success_response(tid, from, *m.xor_mapped_address, now);
  }
  drive_checks(now);
  return StunResult::Handled;
}

void PathManager::on_handshake_confirmed(Timestamp now) {
  confirmed_ = true;
  drive_checks(now);
}

void PathManager::on_path_validated(bool direct, bool success, Timestamp now) {
  if (!config_.controlling || !direct || !migrating_to_) return;
  const Address remote = *migrating_to_;
  migrating_to_.reset();
  if (!success) {
    events_.note("QUIC path validation to " + remote.to_string() + " failed; staying on the relay");
    round_concluded_ = true;
    schedule_retry(now);
    return;
  }
  active_ = ActivePath::Direct;
  direct_remote_ = remote;
  retry_at_ = kNone; // a round that failed meanwhile needs no retry: we are direct
  consent_ = std::make_unique<Consent>(config_.consent, now);
  counters_.upgrades++;
  retry_.reset();
  const auto since_start = std::chrono::microseconds((now - created_) / 1000);
  if (!time_to_validated_) time_to_validated_ = since_start;
  // With immediate migration, data went direct at the move, not at its validation.
  if (!time_to_direct_) time_to_direct_ = moved_at_ ? *moved_at_ : since_start;
}

void PathManager::drive_checks(Timestamp now) {
  if (!checks_ || !checks_->started()) return;
  while (auto c = checks_->poll(now)) {
    // A check not sent counts for the check list as one lost on the way.
    if (checks_this_round_ >= kMaxChecksPerRound) {
      counters_.checks_over_round_cap++;
      continue;
    }
    if (send_request(c->to, c->transaction_id, c->priority, c->use_candidate, false)) {
      counters_.checks_sent++;
      checks_this_round_++;
    }
  }
  if (round_concluded_) return;
  if (const auto* sel = checks_->selected()) {
    if (!config_.controlling) {
      round_concluded_ = true;
      return;
    }
    if (!confirmed_) return; // RFC 9000 §9: no migration before the handshake is confirmed
    round_concluded_ = true;
    if (active_ == ActivePath::Direct && direct_remote_ == sel->remote.address) return;
    migrating_to_ = sel->remote.address;
    std::string why = "checks succeeded in round " + std::to_string(generation_) + ": " +
                      describe(sel->local) + " -> " + describe(sel->remote);
    if (sel->rtt) why += ", check RTT " + ms_text(*sel->rtt);
    if (config_.immediate_migration) moved_at_ = std::chrono::microseconds((now - created_) / 1000);
    events_.use_direct(sel->remote.address, why);
    return;
  }
  if (checks_->failed()) conclude_round(now);
}

void PathManager::conclude_round(Timestamp now) {
  round_concluded_ = true;
  if (active_ == ActivePath::Direct) return; // the current direct path still has consent
  if (hopeless_round_ && checks_->pairs().empty()) {
    // Nothing could work and nothing was sent; retrying would change nothing. A new round
    // comes when either end's candidates change (a new network).
    events_.note("no direct path can exist in round " + std::to_string(generation_) +
                 "; staying on the relay without checks");
    return;
  }
  events_.note("no direct path in round " + std::to_string(generation_) + " (" +
               std::to_string(checks_->pairs().size()) + " pairs failed); staying on the relay");
  schedule_retry(now);
}

void PathManager::schedule_retry(Timestamp now) {
  // Only the controlling side retries: it opens rounds, the other side joins them.
  if (!config_.controlling) return;
  retry_at_ = now + to_ns(retry_.next(random_u32()));
}

void PathManager::drive_consent(Timestamp now) {
  if (active_ != ActivePath::Direct || !consent_ || !direct_remote_) return;
  if (consent_->expired(now)) {
    const Address dead = *direct_remote_;
    // RFC 7675: it no longer wants our packets. Checks toward it spend again.
    std::erase(validated_, dead);
    consent_.reset();
    direct_remote_.reset();
    active_ = ActivePath::Relay;
    counters_.fallbacks++;
    events_.use_relay("no answer on the direct path to " + dead.to_string() + " for " +
                      std::to_string(config_.consent.timeout.count()) + " ms (consent lost)");
    schedule_retry(now);
    return;
  }
  while (auto tid = consent_->poll(now)) {
    counters_.consent_requests++;
    // RFC 7675 §5.1: consent checks are ordinary Binding requests on the selected pair.
    uint32_t priority = 0;
    if (checks_)
      for (const auto& p : checks_->pairs())
        if (p.remote.address == *direct_remote_) priority = p.local.priority;
    send_request(*direct_remote_, *tid, priority, false, true);
  }
}

void PathManager::handle_timeout(Timestamp now) {
  drive_checks(now);
  drive_consent(now);
  if (retry_at_ != kNone && now >= retry_at_ && !migrating_to_) {
    retry_at_ = kNone;
    start_round(now, "retrying the upgrade");
  }
  if (pending_own_ || !pending_join_.empty()) run_pending_round(now);
}

Timestamp PathManager::next_timeout() const {
  // A retry waits for the QUIC path validation under way (on_path_validated ends it): until
  // then it is not due, else the owner's timer would fire again and again.
  Timestamp t = migrating_to_ ? kNone : retry_at_;
  if (pending_own_ || !pending_join_.empty()) t = std::min(t, next_round_at());
  if (checks_ && checks_->started()) t = std::min(t, checks_->next_timeout());
  if (consent_ && active_ == ActivePath::Direct) {
    t = std::min(t, consent_->next_timeout());
  }
  return t;
}

const char* PathManager::phase() const {
  if (migrating_to_) return "migrating";
  if (checks_ && checks_->started() && !round_concluded_) return "checking";
  if (checks_ && !checks_->started() && generation_ > 0) return "signaling";
  if (retry_at_ != kNone || pending_own_ || !pending_join_.empty()) return "waiting to retry";
  return active_ == ActivePath::Direct ? "direct" : "relay";
}

std::vector<Candidate> PathManager::remote_candidates() const {
  return remotes_;
}

std::optional<std::chrono::microseconds> PathManager::direct_rtt() const {
  if (consent_ && consent_->last_rtt()) return consent_->last_rtt();
  if (checks_)
    if (const auto* sel = checks_->selected(); sel && sel->rtt) return sel->rtt;
  return std::nullopt;
}

} // namespace ztna::ice
