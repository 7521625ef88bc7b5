// The intermediate's access policy (docs/policy.md): which agents may reach which services, and
// which connectors may serve them. Deny by default: a request no rule allows is refused.
//
// Sans-IO apart from Policy::load_file: parsing takes the file's text, evaluation is a pure
// function of the loaded rules. A Policy never changes after loading; the daemon swaps a
// PolicyPtr on reload, so a decision in progress keeps the rules it started with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ztna::policy {

// The policy file format version this build reads (`version = 1`).
constexpr int64_t kVersion = 1;
// A larger file is refused before parsing (a policy is a few hundred lines at most).
constexpr size_t kMaxFileSize = 1 << 20;

// Who asks: an agent or a connector, by the name and groups of its certificate. In a policy
// file, agent, connector and group names follow the certificates' rule (is_valid_identity_name
// in identity/identity.hpp).
struct Principal {
  std::string name;
  std::vector<std::string> groups;
};

enum class RuleKind : uint8_t { Access, Serve }; // [[access]]: agent -> service; [[serve]]
enum class Effect : uint8_t { Allow, Deny };

const char* to_string(RuleKind kind); // "access" | "serve"
const char* to_string(Effect effect); // "allow" | "deny"

// Where a rule is and what it does, for reports.
struct RuleRef {
  RuleKind kind = RuleKind::Access;
  size_t index = 0;              // 1-based, among the file's rules of the same kind
  std::string name;              // the rule's `name`, empty if it has none
  size_t line = 0;               // line of its [[access]] / [[serve]] header
  Effect effect = Effect::Allow; // [[serve]] rules always allow
};

struct Decision {
  bool allowed = false;
  // The rule that decided; nullopt when no rule matched (deny by default).
  std::optional<RuleRef> rule;
  // The question asked, kept for explain().
  RuleKind kind = RuleKind::Access;
  std::string subject; // the agent's or connector's name
  std::string service;
  std::string source; // the policy's source name (file path)

  // One line, e.g.
  //   allow: rule [[access]] #1 "eng-web" (policy.toml:3)
  //   deny: no rule allows agent 'bob' to reach 'db' (default deny)
  std::string explain() const;
};

class Policy;
using PolicyPtr = std::shared_ptr<const Policy>;

// The outcome of loading: a policy, or one line saying why not.
struct LoadResult {
  PolicyPtr policy;  // null on error
  std::string error; // "policy.toml:12:3: [[access]] #2: unknown key 'agnets' (...)"
  explicit operator bool() const { return policy != nullptr; }
};

class Policy {
public:
  // Parses a policy from text; `source` names it in errors and decisions (usually the path).
  // Never throws: every problem, including a TOML syntax error, comes back in LoadResult::error.
  static LoadResult parse(std::string_view text, std::string source);
  // Reads and parses a file. A missing, unreadable or oversized file is an error like any other.
  static LoadResult load_file(const std::string& path);

  // May this agent open a session to `service`? A matching deny rule wins (the first one is
  // reported); otherwise the first matching allow rule allows; otherwise deny.
  Decision may_access(const Principal& agent, std::string_view service) const;
  // May this connector serve `service`? The first matching rule allows; otherwise deny.
  Decision may_serve(const Principal& connector, std::string_view service) const;

  const std::string& source() const { return source_; }
  int64_t version() const { return kVersion; }
  // First 8 bytes of the SHA-256 of the file's bytes, in hex (16 characters): tells two loads of
  // the same file apart from a changed one in logs.
  const std::string& fingerprint() const { return fingerprint_; }
  // The text it was parsed from (what intermediates share: DESIGN D11).
  const std::string& text() const { return text_; }
  size_t access_rule_count() const { return access_.size(); }
  size_t serve_rule_count() const { return serve_.size(); }
  // "3 access rules, 1 serve rule, fingerprint 0123456789abcdef", for log lines such as
  // "policy v1 loaded from FILE: <summary>".
  std::string summary() const;

private:
  struct Rule {
    RuleRef ref;
    std::vector<std::string> names; // agents or connectors; {"*"} = any
    std::vector<std::string> groups;
    std::vector<std::string> services; // {"*"} = any
  };

  Policy() = default;
  Decision decide(RuleKind kind, const std::vector<Rule>& rules, const Principal& who,
                  std::string_view service) const;

  std::string source_;
  std::string fingerprint_;
  std::string text_;
  std::vector<Rule> access_;
  std::vector<Rule> serve_;

  friend class PolicyBuilder;
};

} // namespace ztna::policy
