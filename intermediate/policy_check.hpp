// `ztna-intermediate policy check`: asks a policy file what it would decide for one agent or
// connector and one service, without a running daemon (docs/policy.md).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace ztna {

struct PolicyCheckOptions {
  std::string policy_file;
  std::optional<std::string> agent; // exactly one of agent and connector
  std::optional<std::string> connector;
  std::vector<std::string> groups; // the subject's groups, as its certificate would carry them
  std::string service;
  bool json = false;
  // Arguments `policy check` did not recognise (filled by add_policy_subcommand's parser): any
  // makes run_policy_check a usage error, so that a typo exits with kPolicyUsageError too.
  std::vector<std::string> unexpected;
};

// Exit codes of `policy check`.
constexpr int kPolicyAllow = 0;
constexpr int kPolicyDeny = 1;
constexpr int kPolicyUsageError = 2; // unreadable or invalid policy file, or bad arguments

// Loads the policy and prints the decision and the rule that made it to `out` (one line, or one
// JSON object with opts.json). Problems with the file or the arguments go to `err` as one line.
// Returns kPolicyAllow, kPolicyDeny or kPolicyUsageError.
int run_policy_check(const PolicyCheckOptions& opts, std::ostream& out, std::ostream& err);

// Declares `policy check --policy FILE (--agent NAME | --connector NAME) [--group G]...
// --service NAME [--json]` on `app`. After parsing, app.got_subcommand("policy") says it was
// given; then call run_policy_check. The options are checked by run_policy_check, not by CLI11,
// so that mistakes in them exit with kPolicyUsageError (an option given without its value is
// CLI11's error, which main() turns into kPolicyUsageError too).
void add_policy_subcommand(CLI::App& app, PolicyCheckOptions& opts);

} // namespace ztna
