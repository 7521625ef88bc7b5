#include "control/check_coordinator.hpp"

namespace ztna {

bool CheckCoordinator::on_candidates(uint64_t session, End end, uint32_t generation) {
  auto& r = rounds_[session];
  if (generation <= r.started) return false;
  auto& mine = r.latest[static_cast<int>(end)];
  if (generation > mine) mine = generation;
  const uint32_t other = r.latest[1 - static_cast<int>(end)];
  if (other != generation || mine != generation) return false;
  r.started = generation;
  rounds_started_++;
  return true;
}

} // namespace ztna
