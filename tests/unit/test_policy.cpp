#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "../../intermediate/policy_check.hpp"
#include "policy/policy.hpp"

using namespace ztna::policy;

namespace {

const char* const kExample = R"(version = 1

[[access]]
name = "eng-web"
groups = ["eng"]
services = ["web", "wiki"]

[[access]]
agents = ["alice-laptop"]
services = ["db"]

[[access]]
name = "no-db-for-contractors"
groups = ["contractors"]
services = ["db"]
effect = "deny"

[[access]]
name = "everyone-status"
agents = ["*"]
services = ["status"]

[[serve]]
connectors = ["office-dc"]
groups = ["dc"]
services = ["web", "db"]

[[serve]]
name = "status-anywhere"
connectors = ["*"]
services = ["status"]
)";

PolicyPtr parse_ok(const std::string& text) {
  auto r = Policy::parse(text, "policy.toml");
  INFO(r.error);
  REQUIRE(r);
  CHECK(r.error.empty());
  return r.policy;
}

// Parses text that must be rejected; returns the one-line error.
std::string error_of(const std::string& text) {
  auto r = Policy::parse(text, "policy.toml");
  INFO(text);
  CHECK_FALSE(r);
  CHECK(r.policy == nullptr);
  CHECK(r.error.find('\n') == std::string::npos);
  CHECK(r.error.rfind("policy.toml", 0) == 0);
  return r.error;
}

// A minimal valid file with one [[access]] rule whose body is `body`.
std::string access_rule(const std::string& body) {
  return "version = 1\n[[access]]\n" + body;
}

Principal agent(std::string name, std::vector<std::string> groups = {}) {
  return {std::move(name), std::move(groups)};
}

} // namespace

TEST_CASE("agent, connector and group names follow the certificate name rule", "[policy]") {
  for (const char* ok : {"alice-laptop", "a", "dc1.eu-west", "A9"}) {
    INFO(ok);
    auto p = parse_ok(access_rule("agents = [\"" + std::string(ok) + "\"]\ngroups = [\"" + ok +
                                  "\"]\nservices = [\"db\"]\n"));
    CHECK(p->may_access(agent(ok), "db").allowed);
  }
  CHECK(parse_ok(access_rule("groups = [\"" + std::string(64, 'g') + "\"]\nservices = [\"s\"]\n")));
  for (std::string bad :
       {std::string(65, 'x'), std::string("-a"), std::string("a-"), std::string(".a"),
        std::string("a."), std::string("a..b"), std::string("a_b"), std::string("caf\xC3\xA9")}) {
    INFO(bad);
    auto e = error_of(access_rule("groups = [\"" + bad + "\"]\nservices = [\"db\"]\n"));
    CHECK(e.rfind("policy.toml:3:11: [[access]] #1: groups: invalid name '", 0) == 0);
  }
}

TEST_CASE("an empty policy denies everything", "[policy]") {
  auto p = parse_ok("version = 1\n");
  CHECK(p->access_rule_count() == 0);
  CHECK(p->serve_rule_count() == 0);
  auto d = p->may_access(agent("bob"), "db");
  CHECK_FALSE(d.allowed);
  CHECK_FALSE(d.rule);
  CHECK(d.explain() == "deny: no rule allows agent 'bob' to reach 'db' (default deny)");
  auto s = p->may_serve(agent("dc1"), "db");
  CHECK_FALSE(s.allowed);
  CHECK_FALSE(s.rule);
  CHECK(s.explain() == "deny: no rule allows connector 'dc1' to serve 'db' (default deny)");
}

TEST_CASE("access is allowed by name, by group and by '*'", "[policy]") {
  auto p = parse_ok(kExample);
  CHECK(p->access_rule_count() == 4);
  CHECK(p->serve_rule_count() == 2);

  SECTION("by name") {
    auto d = p->may_access(agent("alice-laptop"), "db");
    CHECK(d.allowed);
    REQUIRE(d.rule);
    CHECK(d.rule->kind == RuleKind::Access);
    CHECK(d.rule->index == 2);
    CHECK(d.rule->name.empty());
    CHECK(d.rule->line == 8);
    CHECK(d.rule->effect == Effect::Allow);
    CHECK(d.explain() == "allow: rule [[access]] #2 (policy.toml:8)");
  }
  SECTION("by group") {
    auto d = p->may_access(agent("bob", {"ops", "eng"}), "wiki");
    CHECK(d.allowed);
    REQUIRE(d.rule);
    CHECK(d.rule->index == 1);
    CHECK(d.rule->name == "eng-web");
    CHECK(d.rule->line == 3);
    CHECK(d.explain() == "allow: rule [[access]] #1 \"eng-web\" (policy.toml:3)");
  }
  SECTION("by '*'") {
    auto d = p->may_access(agent("anyone"), "status");
    CHECK(d.allowed);
    REQUIRE(d.rule);
    CHECK(d.rule->index == 4);
    CHECK(d.rule->name == "everyone-status");
  }
  SECTION("nothing else") {
    CHECK_FALSE(p->may_access(agent("bob", {"ops"}), "web").allowed);
    CHECK_FALSE(p->may_access(agent("alice-laptop"), "web").allowed); // only db by name
    CHECK_FALSE(p->may_access(agent("bob", {"eng"}), "db").allowed);
    CHECK_FALSE(p->may_access(agent("bob", {"eng"}), "Web").allowed); // exact, case-sensitive
    CHECK_FALSE(p->may_access(agent("Alice-laptop"), "db").allowed);
    // A name is not a group, nor a group a name.
    CHECK_FALSE(p->may_access(agent("eng"), "web").allowed);
    CHECK_FALSE(p->may_access(agent("bob", {"alice-laptop"}), "db").allowed);
  }
}

TEST_CASE("a matching deny rule wins over every allow rule", "[policy]") {
  auto p = parse_ok(kExample);
  // alice-laptop is allowed db by rule #2, but as a contractor rule #3 denies it.
  auto d = p->may_access(agent("alice-laptop", {"contractors"}), "db");
  CHECK_FALSE(d.allowed);
  REQUIRE(d.rule);
  CHECK(d.rule->index == 3);
  CHECK(d.rule->effect == Effect::Deny);
  CHECK(d.rule->line == 12);
  CHECK(d.explain() == "deny: rule [[access]] #3 \"no-db-for-contractors\" (policy.toml:12)");
  // The deny rule is about db only.
  CHECK(p->may_access(agent("carol", {"contractors", "eng"}), "web").allowed);

  // A deny rule later in the file still wins over an earlier allow.
  auto q = parse_ok(R"(version = 1
[[access]]
agents = ["*"]
services = ["*"]
[[access]]
name = "first-deny"
agents = ["mallory"]
services = ["*"]
effect = "deny"
[[access]]
name = "second-deny"
agents = ["mallory"]
services = ["db"]
effect = "deny"
)");
  auto m = q->may_access(agent("mallory"), "db");
  CHECK_FALSE(m.allowed);
  REQUIRE(m.rule);
  CHECK(m.rule->name == "first-deny"); // the first matching deny is reported
  CHECK(q->may_access(agent("trent"), "db").allowed);
}

TEST_CASE("the first matching allow rule is reported", "[policy]") {
  auto p = parse_ok(R"(version = 1
[[access]]
name = "a"
groups = ["eng"]
services = ["web"]
[[access]]
name = "b"
agents = ["bob"]
services = ["*"]
[[access]]
name = "c"
agents = ["bob"]
services = ["web"]
effect = "allow"
)");
  auto d = p->may_access(agent("bob", {"eng"}), "web");
  REQUIRE(d.rule);
  CHECK(d.rule->name == "a");
  d = p->may_access(agent("bob"), "web");
  REQUIRE(d.rule);
  CHECK(d.rule->name == "b");
  CHECK(d.rule->index == 2);
  CHECK(d.rule->line == 6);
}

TEST_CASE("serve rules allow connectors to serve services", "[policy]") {
  auto p = parse_ok(kExample);
  auto d = p->may_serve(agent("office-dc"), "db");
  CHECK(d.allowed);
  REQUIRE(d.rule);
  CHECK(d.rule->kind == RuleKind::Serve);
  CHECK(d.rule->index == 1);
  CHECK(d.rule->line == 23);
  CHECK(d.rule->effect == Effect::Allow);
  CHECK(d.explain() == "allow: rule [[serve]] #1 (policy.toml:23)");

  CHECK(p->may_serve(agent("dc2", {"dc"}), "web").allowed);
  auto any = p->may_serve(agent("anything"), "status");
  CHECK(any.allowed);
  REQUIRE(any.rule);
  CHECK(any.rule->name == "status-anywhere");
  CHECK_FALSE(p->may_serve(agent("dc2"), "web").allowed);
  CHECK_FALSE(p->may_serve(agent("office-dc"), "wiki").allowed);
  // Access rules say nothing about serving, nor serve rules about access.
  CHECK_FALSE(p->may_serve(agent("alice-laptop"), "db").allowed);
  CHECK_FALSE(p->may_access(agent("office-dc"), "db").allowed);
}

TEST_CASE("fingerprint and summary", "[policy]") {
  auto p = parse_ok(kExample);
  CHECK(p->fingerprint().size() == 16);
  CHECK(p->fingerprint().find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(p->summary() == "4 access rules, 2 serve rules, fingerprint " + p->fingerprint());
  CHECK(p->version() == 1);
  CHECK(p->source() == "policy.toml");
  // Same bytes, same fingerprint; any change, another one.
  CHECK(parse_ok(kExample)->fingerprint() == p->fingerprint());
  CHECK(parse_ok(std::string(kExample) + "\n")->fingerprint() != p->fingerprint());
  // The first 8 bytes of the SHA-256 of the file (sha256sum prints the same digits first).
  CHECK(parse_ok("version = 1\n")->fingerprint() == "dbab12665d98aef0");
  auto one = parse_ok(access_rule("agents = [\"a\"]\nservices = [\"s\"]\n"));
  CHECK(one->summary() == "1 access rule, 0 serve rules, fingerprint " + one->fingerprint());
}

TEST_CASE("the version is required and must be 1", "[policy]") {
  CHECK(error_of("") == "policy.toml: missing version (the file must say 'version = 1')");
  CHECK(error_of("[[serve]]\nconnectors = [\"x\"]\nservices = [\"y\"]\n") ==
        "policy.toml: missing version (the file must say 'version = 1')");
  CHECK(error_of("# policy\nversion = 2\n") ==
        "policy.toml:2:11: unsupported policy version 2 (this build reads version 1)");
  CHECK(error_of("version = \"1\"\n") ==
        "policy.toml:1:11: version: expected the integer 1, got a string");
  CHECK(error_of("version = 1.0\n") ==
        "policy.toml:1:11: version: expected the integer 1, got a float");
  // The version is checked before anything else in the file.
  CHECK(error_of("bogus = 1\nversion = 2\n") ==
        "policy.toml:2:11: unsupported policy version 2 (this build reads version 1)");
}

TEST_CASE("TOML syntax errors name the file, line and column", "[policy]") {
  CHECK(error_of("version = 1\n[[access]]\nagents = [\"a\"\n") ==
        "policy.toml:3:15: Error while parsing array: encountered end-of-file");
  CHECK(error_of("version = 1\nversion = 1\n") ==
        "policy.toml:2:11: Error while parsing key-value pair: cannot redefine existing integer "
        "'version'");
  CHECK(error_of("version = 1\n[[access]]\nagents = [\"a\"]\n[access]\n") ==
        "policy.toml:4:1: Error while parsing table header: cannot redefine existing array "
        "'access' as table");
  auto bad_utf8 = error_of("version = 1\n# \xFF\n");
  CHECK(bad_utf8.rfind("policy.toml:2:", 0) == 0);
}

TEST_CASE("unknown keys and tables are errors", "[policy]") {
  CHECK(error_of(access_rule("name = \"x\"\n  agnets = [\"a\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:4:3: [[access]] #1: unknown key 'agnets' (expected name, agents, groups, "
        "services, effect)");
  CHECK(error_of("version = 1\n[[serve]]\nconnectors = [\"c\"]\nservices = [\"db\"]\n"
                 "effect = \"deny\"\n") ==
        "policy.toml:5:1: [[serve]] #1: unknown key 'effect' ([[serve]] rules only allow; "
        "expected name, connectors, groups, services)");
  CHECK(error_of("version = 1\n[[serve]]\nagents = [\"c\"]\nservices = [\"db\"]\n") ==
        "policy.toml:3:1: [[serve]] #1: unknown key 'agents' (expected name, connectors, groups, "
        "services)");
  CHECK(error_of("version = 1\nstrict = true\n") ==
        "policy.toml:2:1: unknown key 'strict' (expected version, [[access]], [[serve]])");
  CHECK(error_of("version = 1\n[settings]\nx = 1\n") ==
        "policy.toml:2:2: unknown table [settings] (expected version, [[access]], [[serve]])");
  CHECK(error_of("version = 1\n[[acess]]\nagents = [\"a\"]\n") ==
        "policy.toml:2:3: unknown table [[acess]] (expected version, [[access]], [[serve]])");
  // A sub-table of a rule is an unknown key of that rule.
  CHECK(error_of(access_rule("agents = [\"a\"]\nservices = [\"db\"]\n[access.extra]\n")) ==
        "policy.toml:5:9: [[access]] #1: unknown key 'extra' (expected name, agents, groups, "
        "services, effect)");
  // Control characters in a quoted key do not break the one-line message.
  CHECK(error_of(access_rule("\"a\\nb\" = 1\nagents = [\"a\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:1: [[access]] #1: unknown key 'a\\x0ab' (expected name, agents, groups, "
        "services, effect)");
}

TEST_CASE("the first problem in file order is the one reported", "[policy]") {
  // toml++ keeps keys sorted; the report must follow the file instead.
  CHECK(error_of(access_rule("zzz = 1\naaa = 2\nagents = [\"a\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:1: [[access]] #1: unknown key 'zzz' (expected name, agents, groups, "
        "services, effect)");
  CHECK(error_of("version = 1\n[[access]]\nagents = [\"a\"]\nservices = [\"db\"]\n"
                 "[[access]]\nagents = [\"b\"]\nservices = [1]\n"
                 "[[serve]]\nconnectors = []\nservices = [\"db\"]\n") ==
        "policy.toml:7:13: [[access]] #2: services: entry #1 is an integer, not a string");
}

TEST_CASE("wrong types are errors", "[policy]") {
  CHECK(error_of("version = 1\naccess = 3\n") ==
        "policy.toml:2:1: access: expected an array of tables (write [[access]]), got an integer");
  CHECK(error_of("version = 1\n[serve]\nconnectors = [\"c\"]\n") ==
        "policy.toml:2:2: serve: expected an array of tables (write [[serve]]), got a table");
  CHECK(error_of("version = 1\naccess = [1]\n") ==
        "policy.toml:2:11: [[access]] #1: expected a table, got an integer");
  CHECK(error_of(access_rule("agents = \"alice\"\nservices = [\"db\"]\n")) ==
        "policy.toml:3:10: [[access]] #1: agents: expected an array of strings, got a string");
  CHECK(error_of(access_rule("agents = [\"a\", 2]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:16: [[access]] #1: agents: entry #2 is an integer, not a string");
  CHECK(error_of(access_rule("agents = [\"a\"]\nservices = [[\"db\"]]\n")) ==
        "policy.toml:4:13: [[access]] #1: services: entry #1 is an array, not a string");
  CHECK(error_of(access_rule("name = 7\nagents = [\"a\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:8: [[access]] #1: name: expected a string, got an integer");
  CHECK(error_of(access_rule("agents = [\"a\"]\nservices = [\"db\"]\neffect = true\n")) ==
        "policy.toml:5:10: [[access]] #1: effect: expected \"allow\" or \"deny\", got a boolean");
  CHECK(error_of(access_rule("agents = [\"a\"]\nservices = [\"db\"]\neffect = \"permit\"\n")) ==
        "policy.toml:5:10: [[access]] #1: effect: expected \"allow\" or \"deny\", got 'permit'");
  // Inline tables are tables like any other.
  auto p = parse_ok("version = 1\naccess = [{agents = [\"a\"], services = [\"db\"]}]\n");
  CHECK(p->may_access(agent("a"), "db").allowed);
}

TEST_CASE("missing keys and empty or duplicate lists are errors", "[policy]") {
  CHECK(error_of("version = 1\n\n[[access]]\nagents = [\"a\"]\n") ==
        "policy.toml:3:1: [[access]] #1: missing required key 'services'");
  CHECK(error_of("version = 1\n[[access]]\nname = \"x\"\nservices = [\"db\"]\n") ==
        "policy.toml:2:1: [[access]] #1: missing agents or groups (a rule needs one or both)");
  CHECK(error_of("version = 1\n[[serve]]\nservices = [\"db\"]\n") ==
        "policy.toml:2:1: [[serve]] #1: missing connectors or groups (a rule needs one or both)");
  CHECK(error_of(access_rule("agents = []\nservices = [\"db\"]\n")) ==
        "policy.toml:3:10: [[access]] #1: agents: empty list");
  CHECK(error_of(access_rule("groups = [\"eng\"]\nservices = []\n")) ==
        "policy.toml:4:12: [[access]] #1: services: empty list");
  CHECK(error_of(access_rule("agents = [\"a\", \"b\", \"a\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:21: [[access]] #1: agents: duplicate entry 'a'");
  CHECK(error_of(access_rule("groups = [\"eng\"]\nservices = [\"db\",\n  \"db\"]\n")) ==
        "policy.toml:5:3: [[access]] #1: services: duplicate entry 'db'");
  CHECK(error_of("version = 1\n[[serve]]\nconnectors = [\"c\"]\ngroups = [\"x\", \"x\"]\n"
                 "services = [\"db\"]\n") ==
        "policy.toml:4:16: [[serve]] #1: groups: duplicate entry 'x'");
}

TEST_CASE("names, groups and services must be valid", "[policy]") {
  const std::string rule = " (letters, digits, '-' and '.', 1 to 64 characters, starting and "
                           "ending with a letter or digit, no '..')";
  CHECK(error_of(access_rule("agents = [\"alice laptop\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:11: [[access]] #1: agents: invalid name 'alice laptop'" + rule);
  CHECK(error_of(access_rule("agents = [\"a..b\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:11: [[access]] #1: agents: invalid name 'a..b'" + rule);
  CHECK(error_of(access_rule("groups = [\"-eng\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:11: [[access]] #1: groups: invalid name '-eng'" + rule);
  CHECK(error_of("version = 1\n[[serve]]\nconnectors = [\"" + std::string(65, 'c') +
                 "\"]\nservices = [\"db\"]\n")
            .rfind("policy.toml:3:15: [[serve]] #1: connectors: invalid name 'ccc", 0) == 0);
  CHECK(error_of(access_rule("agents = [\"a\"]\nservices = [\"my db\"]\n")) ==
        "policy.toml:4:13: [[access]] #1: services: invalid name 'my db' (1 to 255 bytes of "
        "UTF-8, no spaces or control characters)");
  CHECK(error_of(access_rule("agents = [\"a\"]\nservices = [\"\"]\n")) ==
        "policy.toml:4:13: [[access]] #1: services: invalid name '' (1 to 255 bytes of UTF-8, no "
        "spaces or control characters)");
  CHECK(error_of(access_rule("groups = [\"*\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:11: [[access]] #1: groups: '*' is not a group (to match anyone, write "
        "agents = [\"*\"])");
  CHECK(error_of("version = 1\n[[serve]]\ngroups = [\"*\"]\nservices = [\"db\"]\n") ==
        "policy.toml:3:11: [[serve]] #1: groups: '*' is not a group (to match anyone, write "
        "connectors = [\"*\"])");
  CHECK(error_of(access_rule("agents = [\"a\", \"*\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:16: [[access]] #1: agents: '*' matches everything and must be the only "
        "entry");
  CHECK(error_of(access_rule("name = \"\"\nagents = [\"a\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:8: [[access]] #1: name: invalid rule name '' (1 to 255 bytes of printable "
        "UTF-8, shown by 'policy check')");
  CHECK(error_of(access_rule("name = \"a\\tb\"\nagents = [\"a\"]\nservices = [\"db\"]\n")) ==
        "policy.toml:3:8: [[access]] #1: name: invalid rule name 'a\\x09b' (1 to 255 bytes of "
        "printable UTF-8, shown by 'policy check')");
  // Service names follow the wire's rule, which is wider than the certificate names'.
  auto p = parse_ok(access_rule("agents = [\"a\"]\nservices = [\"db_1/primary\"]\n"));
  CHECK(p->may_access(agent("a"), "db_1/primary").allowed);
  // A rule name may have spaces.
  p = parse_ok(access_rule("name = \"Eng: web\"\nagents = [\"a\"]\nservices = [\"db\"]\n"));
  CHECK(p->may_access(agent("a"), "db").explain() ==
        "allow: rule [[access]] #1 \"Eng: web\" (policy.toml:2)");
}

TEST_CASE("load_file reports a missing file", "[policy]") {
  auto r = Policy::load_file("/nonexistent/policy.toml");
  CHECK_FALSE(r);
  CHECK(r.error ==
        "/nonexistent/policy.toml: cannot open the policy file (No such file or directory)");
  auto dir = Policy::load_file("/");
  CHECK_FALSE(dir);
  CHECK(dir.error == "/: cannot read the policy file (Is a directory)");
}

namespace {

// A policy file in the temporary directory, removed at the end of the test.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    static int counter = 0;
    path = (std::filesystem::temp_directory_path() /
            ("ztna-policy-" + std::to_string(getpid()) + "-" + std::to_string(++counter) + ".toml"))
               .string();
    std::ofstream(path, std::ios::binary) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

struct CheckRun {
  int rc;
  std::string out, err;
};

CheckRun check(const ztna::PolicyCheckOptions& opts) {
  std::ostringstream out, err;
  int rc = ztna::run_policy_check(opts, out, err);
  return {rc, out.str(), err.str()};
}

} // namespace

TEST_CASE("policy check prints the decision and exits 0 or 1", "[policy]") {
  TempFile file(kExample);
  ztna::PolicyCheckOptions opts;
  opts.policy_file = file.path;
  opts.agent = "bob";
  opts.groups = {"eng"};
  opts.service = "web";
  auto r = check(opts);
  CHECK(r.rc == 0);
  CHECK(r.out == "allow: rule [[access]] #1 \"eng-web\" (" + file.path + ":3)\n");
  CHECK(r.err.empty());

  opts.service = "db";
  r = check(opts);
  CHECK(r.rc == 1);
  CHECK(r.out == "deny: no rule allows agent 'bob' to reach 'db' (default deny)\n");

  opts.agent.reset();
  opts.connector = "office-dc";
  opts.groups.clear();
  r = check(opts);
  CHECK(r.rc == 0);
  CHECK(r.out == "allow: rule [[serve]] #1 (" + file.path + ":23)\n");
}

TEST_CASE("policy check --json prints one object", "[policy]") {
  TempFile file(kExample);
  ztna::PolicyCheckOptions opts;
  opts.policy_file = file.path;
  opts.agent = "alice-laptop";
  opts.groups = {"contractors"};
  opts.service = "db";
  opts.json = true;
  auto r = check(opts);
  CHECK(r.rc == 1);
  REQUIRE(r.out.find('\n') == r.out.size() - 1);
  CHECK(r.out.rfind("{\"decision\":\"deny\",\"subject\":{\"role\":\"agent\",", 0) == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["decision"] == "deny");
  CHECK(j["subject"] ==
        nlohmann::json({{"role", "agent"}, {"name", "alice-laptop"}, {"groups", {"contractors"}}}));
  CHECK(j["service"] == "db");
  CHECK(j["rule"] == nlohmann::json({{"kind", "access"},
                                     {"index", 3},
                                     {"name", "no-db-for-contractors"},
                                     {"line", 12},
                                     {"effect", "deny"}}));
  CHECK(j["explanation"] ==
        "deny: rule [[access]] #3 \"no-db-for-contractors\" (" + file.path + ":12)");
  CHECK(j["policy"]["file"] == file.path);
  CHECK(j["policy"]["fingerprint"].get<std::string>().size() == 16);

  opts.agent = "nobody";
  opts.groups.clear();
  r = check(opts);
  CHECK(r.rc == 1);
  j = nlohmann::json::parse(r.out);
  CHECK(j["rule"].is_null());
  CHECK(j["subject"]["groups"] == nlohmann::json::array());

  opts.agent.reset();
  opts.connector = "dc9";
  opts.service = "status";
  r = check(opts);
  CHECK(r.rc == 0);
  j = nlohmann::json::parse(r.out);
  CHECK(j["decision"] == "allow");
  CHECK(j["subject"]["role"] == "connector");
  CHECK(j["rule"]["kind"] == "serve");
  CHECK(j["rule"]["name"] == "status-anywhere");
  opts.service = "web";
  opts.connector = "office-dc";
  j = nlohmann::json::parse(check(opts).out);
  CHECK(j["rule"]["name"].is_null()); // an unnamed rule
}

TEST_CASE("policy check exits 2 on a bad file or bad arguments", "[policy]") {
  TempFile bad("version = 1\n[[access]]\nagnets = [\"a\"]\nservices = [\"db\"]\n");
  TempFile good(kExample);
  ztna::PolicyCheckOptions opts;
  opts.policy_file = bad.path;
  opts.agent = "bob";
  opts.service = "db";
  auto r = check(opts);
  CHECK(r.rc == 2);
  CHECK(r.out.empty());
  CHECK(r.err == "error: " + bad.path +
                     ":3:1: [[access]] #1: unknown key 'agnets' (expected name, agents, groups, "
                     "services, effect)\n");

  opts.policy_file = bad.path + ".missing";
  r = check(opts);
  CHECK(r.rc == 2);
  CHECK(r.err == "error: " + opts.policy_file +
                     ": cannot open the policy file (No such file or directory)\n");

  opts.policy_file = good.path;
  auto usage = [&](ztna::PolicyCheckOptions o, const std::string& message) {
    auto u = check(o);
    CHECK(u.rc == 2);
    CHECK(u.out.empty());
    CHECK(u.err == "error: policy check: " + message + "\n");
  };
  auto o = opts;
  o.connector = "dc";
  usage(o, "give exactly one of --agent NAME and --connector NAME");
  o = opts;
  o.agent.reset();
  usage(o, "give exactly one of --agent NAME and --connector NAME");
  o = opts;
  o.policy_file.clear();
  usage(o, "--policy FILE is required");
  o = opts;
  o.service.clear();
  usage(o, "--service NAME is required");
  o = opts;
  o.agent = "bad name";
  usage(o, "--agent 'bad name': not a valid name (letters, digits, '-' and '.', 1 to 64 "
           "characters, starting and ending with a letter or digit, no '..')");
  o = opts;
  o.groups = {"ok", "not\nok"};
  usage(o, "--group 'not?ok': not a valid group name (letters, digits, '-' and '.', 1 to 64 "
           "characters, starting and ending with a letter or digit, no '..')");
  o = opts;
  o.service = "a b";
  usage(o, "--service 'a b': not a valid service name (no spaces or control characters, 1 to "
           "255 bytes)");
}

TEST_CASE("the policy check subcommand parses its options", "[policy]") {
  CLI::App app;
  ztna::PolicyCheckOptions opts;
  ztna::add_policy_subcommand(app, opts);
  app.parse(std::vector<std::string>{"--json", "db", "--service", "g2", "--group", "g1", "--group",
                                     "bob", "--agent", "p.toml", "--policy", "check",
                                     "policy"}); // CLI11 takes a vector in reverse order
  CHECK(app.got_subcommand("policy"));
  CHECK(opts.policy_file == "p.toml");
  CHECK(opts.agent == std::optional<std::string>("bob"));
  CHECK_FALSE(opts.connector);
  CHECK(opts.groups == std::vector<std::string>{"g1", "g2"});
  CHECK(opts.service == "db");
  CHECK(opts.json);
  CHECK(opts.unexpected.empty());

  // A misspelt option is a usage error of the check (exit 2), not of the command line parser.
  CLI::App typo;
  ztna::PolicyCheckOptions t;
  ztna::add_policy_subcommand(typo, t);
  typo.parse(std::vector<std::string>{"db", "--service", "bob", "--agnet", "p.toml", "--policy",
                                      "check", "policy"});
  CHECK(t.unexpected == std::vector<std::string>{"--agnet", "bob"});
  auto r = check(t);
  CHECK(r.rc == 2);
  CHECK(r.err == "error: policy check: unexpected argument '--agnet'\n");
}
