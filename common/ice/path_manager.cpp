#include "ice/path_manager.hpp"

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

} // namespace

const char* to_string(ActivePath p) {
  return p == ActivePath::Direct ? "direct" : "relay";
}

PathManager::PathManager(PathManagerConfig config, PathEvents& events, Timestamp now)
    : config_(std::move(config)), events_(events), created_(now),
      retry_(config_.retry_initial, config_.retry_max) {
  config_.checks.controlling = config_.controlling;
  config_.checks.random = config_.random;
  config_.consent.random = config_.random;
  local_ufrag_ = random_ice_string(8, config_.random);
  local_password_ = random_ice_string(24, config_.random);
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
  if (candidates == locals_) return;
  const bool first = locals_.empty() && generation_ == 0;
  locals_ = std::move(candidates);
  if (first && !config_.controlling) return; // the connector answers the agent's first round
  if (first) return start_round(now, "session start");
  // RFC 8445 §9 (ICE restart): our candidates changed, so every pair must be checked again.
  start_round(now, "local candidates changed");
}

void PathManager::start_round(Timestamp now, const std::string& why) {
  if (locals_.empty()) return;
  generation_++;
  counters_.rounds++;
  retry_at_ = kNone;
  new_check_list();
  send_own_candidates();
  if (generation_ > 1) events_.note("checks round " + std::to_string(generation_) + ": " + why);
  (void)now;
}

void PathManager::new_check_list() {
  checks_ = std::make_unique<CheckList>(config_.checks);
  checks_->set_local_candidates(locals_);
  remotes_.clear();
  round_concluded_ = false;
}

void PathManager::send_own_candidates() {
  wire::Candidates m{config_.session_id, generation_, local_ufrag_, local_password_, {}};
  for (const auto& c : locals_) {
    if (m.candidates.size() == wire::kMaxCandidates) break;
    m.candidates.push_back({static_cast<uint8_t>(c.type), c.priority, c.address});
  }
  events_.send_candidates(m);
}

void PathManager::on_candidates(const wire::Candidates& m, Timestamp now) {
  if (m.generation < generation_) return; // a stale round
  if (m.generation > generation_) {
    // The peer opened a round: join it with our own candidates (a new check list).
    generation_ = m.generation;
    counters_.rounds++;
    retry_at_ = kNone;
    new_check_list();
    if (!locals_.empty()) send_own_candidates();
  }
  if (!checks_) new_check_list();
  remote_ufrag_ = m.ufrag;
  remote_password_ = m.password;
  std::vector<Candidate> remotes;
  for (const auto& e : m.candidates)
    remotes.push_back({static_cast<CandidateType>(e.type), e.address, e.priority});
  checks_->add_remote_candidates(remotes);
  remotes_.insert(remotes_.end(), remotes.begin(), remotes.end());
  (void)now;
}

void PathManager::on_start_checks(uint32_t generation, Timestamp now) {
  if (generation != generation_ || !checks_ || checks_->started()) return;
  checks_->start(now);
  drive_checks(now);
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

void PathManager::send_request(const Address& to, const TransactionId& tid, uint32_t priority,
                               bool use_candidate) {
  if (remote_ufrag_.empty()) return;
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
  remember(tid);
  events_.send_stun(to, bytes);
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
  consent_ = std::make_unique<Consent>(config_.consent, now);
  counters_.upgrades++;
  retry_.reset();
  if (!time_to_direct_) time_to_direct_ = std::chrono::microseconds((now - created_) / 1000);
}

void PathManager::drive_checks(Timestamp now) {
  if (!checks_ || !checks_->started()) return;
  while (auto c = checks_->poll(now)) {
    counters_.checks_sent++;
    send_request(c->to, c->transaction_id, c->priority, c->use_candidate);
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
    events_.use_direct(sel->remote.address, why);
    return;
  }
  if (checks_->failed()) conclude_round(now);
}

void PathManager::conclude_round(Timestamp now) {
  round_concluded_ = true;
  if (active_ == ActivePath::Direct) return; // the current direct path still has consent
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
    send_request(*direct_remote_, *tid, priority, false);
  }
}

void PathManager::handle_timeout(Timestamp now) {
  drive_checks(now);
  drive_consent(now);
  if (retry_at_ != kNone && now >= retry_at_ && !migrating_to_) {
    retry_at_ = kNone;
    start_round(now, "retrying the upgrade");
  }
}

Timestamp PathManager::next_timeout() const {
  Timestamp t = retry_at_;
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
  if (retry_at_ != kNone) return "waiting to retry";
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
