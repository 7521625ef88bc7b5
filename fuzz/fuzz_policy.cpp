// Policy::parse on arbitrary bytes (a policy file is trusted input, but a typo must never crash
// the intermediate, and a reload happens in the running daemon). Checks that
//  - parsing never throws, and a rejected file gives exactly one printable line naming the file,
//  - an accepted file parses again to the same fingerprint and rule counts,
//  - decisions are consistent: an allow names an allow rule, a deny names a deny rule of the
//    access list or no rule at all, serve decisions never deny by rule, rule positions are in
//    range, and every explanation is one line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "policy/policy.hpp"

using namespace ztna::policy;

namespace {

bool one_printable_line(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  return true;
}

void check_decision(const Policy& p, const Decision& d, RuleKind kind) {
  FUZZ_CHECK(d.kind == kind);
  FUZZ_CHECK(one_printable_line(d.explain()));
  if (!d.rule) {
    FUZZ_CHECK(!d.allowed); // deny by default
    return;
  }
  FUZZ_CHECK(d.rule->kind == kind);
  FUZZ_CHECK(d.rule->effect == (d.allowed ? Effect::Allow : Effect::Deny));
  FUZZ_CHECK(d.rule->line >= 1);
  FUZZ_CHECK(d.rule->index >= 1);
  if (kind == RuleKind::Access) {
    FUZZ_CHECK(d.rule->index <= p.access_rule_count());
  } else {
    FUZZ_CHECK(d.rule->index <= p.serve_rule_count());
    FUZZ_CHECK(d.allowed);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto loaded = Policy::parse(text, "policy.toml");
  if (!loaded) {
    FUZZ_CHECK(loaded.policy == nullptr);
    FUZZ_CHECK(one_printable_line(loaded.error));
    FUZZ_CHECK(loaded.error.rfind("policy.toml", 0) == 0);
    return 0;
  }
  const Policy& p = *loaded.policy;
  FUZZ_CHECK(loaded.error.empty());
  FUZZ_CHECK(p.fingerprint().size() == 16);
  FUZZ_CHECK(one_printable_line(p.summary()));

  auto again = Policy::parse(text, "policy.toml");
  FUZZ_CHECK(again && again.policy->fingerprint() == p.fingerprint());
  FUZZ_CHECK(again.policy->access_rule_count() == p.access_rule_count());
  FUZZ_CHECK(again.policy->serve_rule_count() == p.serve_rule_count());

  const Principal subjects[] = {{"alice", {}}, {"bob", {"eng"}}, {"a", {"eng", "ops", "x"}}};
  for (const auto& who : subjects) {
    for (std::string_view service : {"web", "db", "s", "*"}) {
      auto access = p.may_access(who, service);
      check_decision(p, access, RuleKind::Access);
      FUZZ_CHECK(access.subject == who.name && access.service == service);
      check_decision(p, p.may_serve(who, service), RuleKind::Serve);
      // Another group can only add matches: it never turns a deny rule's verdict into allow.
      auto more = who;
      more.groups.push_back("more");
      auto widened = p.may_access(more, service);
      if (access.rule && !access.allowed) FUZZ_CHECK(!widened.allowed);
    }
  }
  return 0;
}
