#include "ice/check_list.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ztna::ice {

namespace {

constexpr Timestamp kNsPerMs = 1'000'000;
// Transaction IDs remembered per pair. One check sends max_transmissions of them; triggered
// checks add more. Beyond this a straggler for a long-superseded transmission is "unknown".
constexpr size_t kMaxSentPerPair = 16;
constexpr Timestamp kMaxRto = 60'000 * kNsPerMs;

Timestamp to_ns(std::chrono::milliseconds d) {
  return d.count() > 0 ? static_cast<Timestamp>(d.count()) * kNsPerMs : 0;
}

bool valid_type(CandidateType t) {
  return t == CandidateType::Host || t == CandidateType::ServerReflexive ||
         t == CandidateType::PeerReflexive || t == CandidateType::Relay;
}

bool same_tid(const std::array<uint8_t, 12>& a, std::span<const uint8_t, 12> b) {
  return std::equal(a.begin(), a.end(), b.begin());
}

} // namespace

const char* to_string(PairState s) {
  switch (s) {
  case PairState::Frozen:
    return "frozen";
  case PairState::Waiting:
    return "waiting";
  case PairState::InProgress:
    return "in-progress";
  case PairState::Succeeded:
    return "succeeded";
  case PairState::Failed:
    return "failed";
  }
  return "unknown";
}

CheckList::CheckList(CheckListConfig config) : config_(std::move(config)) {
  if (!config_.random) throw std::invalid_argument("CheckList needs a random source");
  // A zero RTO would make poll() retransmit forever at one instant.
  if (config_.initial_rto.count() < 1) config_.initial_rto = std::chrono::milliseconds(1);
  if (config_.max_transmissions < 1) config_.max_transmissions = 1;
}

// --- candidates and pairs -------------------------------------------------------------------

const Candidate* CheckList::best_local(bool v6) const {
  const Candidate* best = nullptr;
  for (const auto& c : locals_)
    if (c.address.is_v6() == v6 && (!best || c.priority > best->priority)) best = &c;
  return best;
}

bool CheckList::known_remote(const Address& a) const {
  return std::any_of(remotes_.begin(), remotes_.end(),
                     [&](const Candidate& c) { return c.address == a; });
}

void CheckList::add_pair(const Candidate& remote) {
  const Candidate* local = best_local(remote.address.is_v6());
  if (!local || pair_for(remote.address)) return;
  CandidatePair p;
  p.local = *local;
  p.remote = remote;
  p.priority = config_.controlling ? pair_priority(local->priority, remote.priority)
                                   : pair_priority(remote.priority, local->priority);
  p.state = started_ ? PairState::Waiting : PairState::Frozen;
  pairs_.push_back(p);
  tracks_.push_back(Track{remote.address, {}, 0, 0, kNever, false, false});
}

void CheckList::sort_pairs() {
  std::stable_sort(
      pairs_.begin(), pairs_.end(),
      [](const CandidatePair& a, const CandidatePair& b) { return a.priority > b.priority; });
}

CandidatePair* CheckList::pair_for(const Address& remote) {
  for (auto& p : pairs_)
    if (p.remote.address == remote) return &p;
  return nullptr;
}

CheckList::Track& CheckList::track_for(const Address& remote) {
  for (auto& t : tracks_)
    if (t.remote == remote) return t;
  throw std::logic_error("CheckList: a pair without its track");
}

void CheckList::set_local_candidates(std::vector<Candidate> locals) {
  locals_ = std::move(locals);
  // Pairs of a family we still have get the new best local and priority; a family we no
  // longer have keeps its pairs (the socket can still send to it).
  for (auto& p : pairs_) {
    if (const Candidate* local = best_local(p.remote.address.is_v6())) {
      p.local = *local;
      p.priority = config_.controlling ? pair_priority(local->priority, p.remote.priority)
                                       : pair_priority(p.remote.priority, local->priority);
    }
  }
  for (const auto& r : remotes_)
    if (r.type != CandidateType::Relay) add_pair(r);
  sort_pairs();
}

void CheckList::add_remote_candidates(std::span<const Candidate> remotes) {
  if (ended()) return;
  for (const auto& c : remotes) {
    if (signaled_ >= kMaxRemoteCandidates) break;
    if (!valid_type(c.type) || !may_probe(c.address) || known_remote(c.address)) continue;
    remotes_.push_back(c);
    ++signaled_;
    if (c.type != CandidateType::Relay) add_pair(c);
  }
  sort_pairs();
}

void CheckList::start(Timestamp now) {
  if (started_) return;
  started_ = true;
  last_paced_ = now;
  paced_any_ = false;
  for (auto& p : pairs_)
    if (p.state == PairState::Frozen) p.state = PairState::Waiting;
}

// --- sending --------------------------------------------------------------------------------

uint32_t CheckList::request_priority(const CandidatePair& pair) const {
  // §7.1.1: type preference of prflx with the local preference of the pair's base.
  const auto local_preference = static_cast<uint16_t>((pair.local.priority >> 8) & 0xffff);
  return candidate_priority(CandidateType::PeerReflexive, local_preference);
}

Check CheckList::transmit(CandidatePair& pair, Track& track, Timestamp now) {
  // Every transmission gets its own transaction ID (RFC 8489 §6.2.1 would reuse it): the RTT we
  // measure is then unambiguous, and an answer to any of them counts.
  const bool use_candidate =
      track.nominating || (config_.controlling && config_.aggressive_nomination);
  Sent s{{}, now, use_candidate};
  config_.random(s.tid);
  track.sent.push_back(s);
  if (track.sent.size() > kMaxSentPerPair) track.sent.pop_front();
  track.attempts++;
  track.retransmit_at = now + track.rto;
  pair.transmissions++;
  return Check{s.tid, pair.remote.address, request_priority(pair), use_candidate};
}

Check CheckList::begin_check(CandidatePair& pair, bool use_candidate, Timestamp now) {
  Track& track = track_for(pair.remote.address);
  if (!use_candidate) pair.state = PairState::InProgress;
  track.nominating = use_candidate;
  track.attempts = 0;
  track.rto = to_ns(config_.initial_rto);
  last_paced_ = now;
  paced_any_ = true;
  std::erase(triggered_, pair.remote.address);
  return transmit(pair, track, now);
}

Timestamp CheckList::pace_at() const {
  return paced_any_ ? last_paced_ + to_ns(config_.pacing) : last_paced_;
}

bool CheckList::has_paced_work() const {
  return std::any_of(pairs_.begin(), pairs_.end(),
                     [](const CandidatePair& p) { return p.state == PairState::Waiting; });
}

std::pair<size_t, Timestamp> CheckList::nomination() const {
  constexpr std::pair<size_t, Timestamp> kNone{SIZE_MAX, kNever};
  if (!config_.controlling || !first_success_) return kNone;
  // One nomination at a time (regular nomination, §8.1.1).
  for (const auto& t : tracks_)
    if (t.nominating) return kNone;
  for (size_t i = 0; i < pairs_.size(); ++i) {
    if (pairs_[i].state != PairState::Succeeded) continue;
    // pairs_[i] is the best Succeeded pair. Nominate at once if no better pair can still
    // succeed, else give the better ones nomination_delay from the first success.
    const bool better_pending = std::any_of(
        pairs_.begin(), pairs_.begin() + static_cast<ptrdiff_t>(i), [](const CandidatePair& p) {
          return p.state == PairState::Frozen || p.state == PairState::Waiting ||
                 p.state == PairState::InProgress;
        });
    return {i, better_pending ? *first_success_ + to_ns(config_.nomination_delay) : 0};
  }
  return kNone;
}

std::optional<Check> CheckList::poll(Timestamp now) {
  if (!started_ || ended()) return std::nullopt;

  // Retransmissions and timeouts (§14.3): not paced, each pair follows its own RTO.
  for (auto& pair : pairs_) {
    Track& track = track_for(pair.remote.address);
    if (track.retransmit_at > now) continue;
    if (track.attempts >= config_.max_transmissions) {
      fail(pair, track);
      continue;
    }
    track.rto = std::min(track.rto * 2, kMaxRto);
    return transmit(pair, track, now);
  }
  if (ended() || now < pace_at()) return std::nullopt;

  // New checks, one per Ta: nomination, then triggered (§6.1.4.2 order), then ordinary.
  if (auto [i, at] = nomination(); at <= now) return begin_check(pairs_[i], true, now);
  while (!triggered_.empty()) {
    CandidatePair* p = pair_for(triggered_.front());
    triggered_.pop_front();
    if (p && p->state == PairState::Waiting) return begin_check(*p, false, now);
  }
  for (auto& pair : pairs_)
    if (pair.state == PairState::Waiting) return begin_check(pair, false, now);
  return std::nullopt;
}

Timestamp CheckList::next_timeout() const {
  if (!started_ || ended()) return kNever;
  Timestamp t = kNever;
  for (const auto& track : tracks_)
    t = std::min(t, track.retransmit_at);
  if (has_paced_work()) t = std::min(t, pace_at());
  if (auto [i, at] = nomination(); at != kNever) t = std::min(t, std::max(at, pace_at()));
  return t;
}

// --- answers --------------------------------------------------------------------------------

std::optional<CheckList::Hit> CheckList::find(std::span<const uint8_t, 12> tid) {
  for (auto& track : tracks_)
    for (const auto& s : track.sent)
      if (same_tid(s.tid, tid)) return Hit{pair_for(track.remote), &track, &s};
  return std::nullopt;
}

void CheckList::fail(CandidatePair& pair, Track& track) {
  pair.state = PairState::Failed;
  track.retransmit_at = kNever;
  track.nominating = false;
}

void CheckList::succeed(CandidatePair& pair, Track& track, Timestamp now) {
  pair.state = PairState::Succeeded;
  track.retransmit_at = kNever;
  if (!first_success_) first_success_ = now;
  // §7.3.1.5: the peer nominated this pair before our own check on it succeeded.
  if (!config_.controlling && track.peer_nominated) pair.nominated = true;
}

bool CheckList::on_success_response(std::span<const uint8_t, 12> transaction_id,
                                    const Address& from, const Address& mapped, Timestamp now) {
  auto hit = find(transaction_id);
  if (!hit) return false;
  if (ended()) return true;
  CandidatePair& pair = *hit->pair;
  Track& track = *hit->track;
  const Sent sent = *hit->sent;
  const bool nomination_answer = track.nominating && sent.use_candidate;
  // A Failed pair stays failed; a duplicate or straggler for a check that already succeeded
  // changes nothing.
  if (pair.state == PairState::Failed) return true;
  if (pair.state == PairState::Succeeded && !nomination_answer) return true;
  if (from != pair.remote.address) {
    fail(pair, track); // §7.2.5.2.1: not symmetric, a NAT in between changes the path
    return true;
  }
  if (!pair.rtt) pair.rtt = std::chrono::microseconds(now > sent.at ? (now - sent.at) / 1000 : 0);
  pair.mapped = mapped;
  if (nomination_answer) {
    pair.nominated = true;
    track.nominating = false;
    track.retransmit_at = kNever;
    return true;
  }
  succeed(pair, track, now);
  if (config_.controlling && sent.use_candidate) pair.nominated = true; // aggressive nomination
  return true;
}

bool CheckList::on_error_response(std::span<const uint8_t, 12> transaction_id, Timestamp now) {
  (void)now;
  auto hit = find(transaction_id);
  if (!hit) return false;
  if (ended()) return true;
  CandidatePair& pair = *hit->pair;
  Track& track = *hit->track;
  const bool nomination_answer = track.nominating && hit->sent->use_candidate;
  if (pair.state == PairState::Succeeded && !nomination_answer) return true;
  fail(pair, track);
  return true;
}

void CheckList::trigger(CandidatePair& pair, Track& track) {
  switch (pair.state) {
  case PairState::Succeeded:
    return; // §7.3.1.4: nothing more to learn
  case PairState::InProgress:
    // Cancel: no more retransmissions, but an answer to any of them still counts.
    track.retransmit_at = kNever;
    pair.state = PairState::Waiting;
    break;
  case PairState::Failed:
    pair.state = started_ ? PairState::Waiting : PairState::Frozen;
    break;
  case PairState::Frozen:
  case PairState::Waiting:
    break;
  }
  if (std::find(triggered_.begin(), triggered_.end(), pair.remote.address) == triggered_.end())
    triggered_.push_back(pair.remote.address);
}

void CheckList::on_request(const Address& from, uint32_t priority, bool use_candidate,
                           Timestamp now) {
  (void)now;
  if (ended() || !may_probe(from)) return;
  CandidatePair* pair = pair_for(from);
  if (!pair) {
    // §7.3.1.3: a source we were not told about is a peer-reflexive candidate. A known address
    // without a pair is a relay candidate, which we do not check.
    if (known_remote(from) || learned_ >= kMaxPeerReflexive) return;
    if (!best_local(from.is_v6())) return;
    const Candidate prflx{CandidateType::PeerReflexive, from, priority};
    remotes_.push_back(prflx);
    ++learned_;
    add_pair(prflx);
    sort_pairs();
    pair = pair_for(from);
  }
  Track& track = track_for(from);
  if (use_candidate && !config_.controlling) {
    track.peer_nominated = true;
    if (pair->state == PairState::Succeeded) pair->nominated = true; // §7.3.1.5
  }
  trigger(*pair, track);
}

// --- results --------------------------------------------------------------------------------

const CandidatePair* CheckList::selected() const {
  for (const auto& p : pairs_)
    if (p.nominated && p.state == PairState::Succeeded) return &p;
  return nullptr;
}

bool CheckList::failed() const {
  if (!started_) return false;
  return std::all_of(pairs_.begin(), pairs_.end(),
                     [](const CandidatePair& p) { return p.state == PairState::Failed; });
}

std::vector<Candidate> CheckList::local_peer_reflexive() const {
  std::vector<Candidate> out;
  for (const auto& p : pairs_) {
    if (!p.mapped || p.mapped->empty()) continue;
    const Address& m = *p.mapped;
    const auto same = [&](const Candidate& c) { return c.address == m; };
    if (std::any_of(locals_.begin(), locals_.end(), same) ||
        std::any_of(out.begin(), out.end(), same))
      continue;
    out.push_back({CandidateType::PeerReflexive, m, request_priority(p)});
  }
  return out;
}

} // namespace ztna::ice
