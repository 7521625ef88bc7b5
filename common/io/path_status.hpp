// The path section of a session's status (docs/operations.md).
#pragma once

#include "ice/path_manager.hpp"

#include <nlohmann/json.hpp>

namespace ztna::io {

// Phase, candidates and pairs with their states, the selected pair, direct RTT, time to direct,
// upgrades and fallbacks; the peer's candidates that the address filter refused (in all and by
// reason), checks held back by the budget or the round cap, rounds deferred by the rate limit,
// and the check budget.
nlohmann::json path_status(const ice::PathManager& m);

} // namespace ztna::io
