// The intermediate's part in hole punching (DESIGN D4): it forwards each end's candidates to
// the other end and, once both ends' candidates of the same round are in, tells both to start
// their checks at once, so that both NATs open their mappings together (simultaneous open).
#pragma once

#include <cstdint>
#include <unordered_map>

namespace ztna {

class CheckCoordinator {
public:
  enum class End { Agent = 0, Connector = 1 };

  // `end` of `session` sent its candidates for round `generation`. True exactly once per round:
  // when the other end's candidates of the same round are already in. The caller then sends
  // StartChecks to both ends. A round older than one already started is ignored.
  bool on_candidates(uint64_t session, End end, uint32_t generation);
  void forget(uint64_t session) { rounds_.erase(session); }
  uint64_t rounds_started() const { return rounds_started_; }

private:
  struct Round {
    uint32_t latest[2] = {0, 0}; // newest generation each end sent (0 = none yet)
    uint32_t started = 0;        // newest generation started
  };
  std::unordered_map<uint64_t, Round> rounds_;
  uint64_t rounds_started_ = 0;
};

} // namespace ztna
