#include "policy_check.hpp"

#include "io/json_text.hpp"

#include "identity/identity.hpp"
#include "policy/policy.hpp"
#include "wire/text.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <ostream>

namespace ztna {
namespace {

// Arguments come from a shell; show them without letting a control character into the output.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    out += c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
  return out;
}

// The problem with the arguments, or an empty string.
std::string check_arguments(const PolicyCheckOptions& opts) {
  if (!opts.unexpected.empty())
    return "unexpected argument '" + printable(opts.unexpected[0]) + "'";
  if (opts.policy_file.empty()) return "--policy FILE is required";
  if (opts.agent.has_value() == opts.connector.has_value())
    return "give exactly one of --agent NAME and --connector NAME";
  const std::string& name = opts.agent ? *opts.agent : *opts.connector;
  const char* flag = opts.agent ? "--agent" : "--connector";
  const char* rule = " (letters, digits, '-' and '.', 1 to 64 characters, starting and ending "
                     "with a letter or digit, no '..')";
  if (!is_valid_identity_name(name))
    return std::string(flag) + " '" + printable(name) + "': not a valid name" + rule;
  for (const auto& g : opts.groups)
    if (!is_valid_identity_name(g))
      return "--group '" + printable(g) + "': not a valid group name" + rule;
  if (opts.service.empty()) return "--service NAME is required";
  if (!wire::is_valid_name(opts.service))
    return "--service '" + printable(opts.service) +
           "': not a valid service name (no spaces or control characters, 1 to 255 bytes)";
  return {};
}

nlohmann::ordered_json to_json(const PolicyCheckOptions& opts, const policy::Policy& p,
                               const policy::Decision& d) {
  nlohmann::ordered_json rule = nullptr;
  if (d.rule) {
    rule = nlohmann::ordered_json::object();
    rule["kind"] = policy::to_string(d.rule->kind);
    rule["index"] = d.rule->index;
    rule["name"] = nullptr; // an unnamed rule
    if (!d.rule->name.empty()) rule["name"] = d.rule->name;
    rule["line"] = d.rule->line;
    rule["effect"] = policy::to_string(d.rule->effect);
  }
  return {{"decision", d.allowed ? "allow" : "deny"},
          {"subject",
           {{"role", opts.agent ? "agent" : "connector"},
            {"name", d.subject},
            {"groups", opts.groups}}},
          {"service", d.service},
          {"rule", rule},
          {"explanation", d.explain()},
          {"policy", {{"file", p.source()}, {"fingerprint", p.fingerprint()}}}};
}

} // namespace

int run_policy_check(const PolicyCheckOptions& opts, std::ostream& out, std::ostream& err) {
  if (auto problem = check_arguments(opts); !problem.empty()) {
    err << "error: policy check: " << problem << "\n";
    return kPolicyUsageError;
  }
  auto loaded = policy::Policy::load_file(opts.policy_file);
  if (!loaded) {
    err << "error: " << loaded.error << "\n";
    return kPolicyUsageError;
  }
  const policy::Principal subject{opts.agent ? *opts.agent : *opts.connector, opts.groups};
  const auto decision = opts.agent ? loaded.policy->may_access(subject, opts.service)
                                   : loaded.policy->may_serve(subject, opts.service);
  if (opts.json)
    out << io::json_text(to_json(opts, *loaded.policy, decision)) << "\n";
  else
    out << decision.explain() << "\n";
  return decision.allowed ? kPolicyAllow : kPolicyDeny;
}

void add_policy_subcommand(CLI::App& app, PolicyCheckOptions& opts) {
  auto* policy = app.add_subcommand("policy", "inspect an access policy file");
  policy->require_subcommand(1);
  auto* check = policy->add_subcommand(
      "check", "what a policy decides for one agent or connector and one service (exit code 0 "
               "allow, 1 deny, 2 bad policy file or arguments)");
  check->add_option("--policy", opts.policy_file, "the policy file (TOML, docs/policy.md)")
      ->type_name("FILE");
  check->add_option("--agent", opts.agent, "may this agent reach the service?")->type_name("NAME");
  check->add_option("--connector", opts.connector, "may this connector serve the service?")
      ->type_name("NAME");
  check->add_option("--group", opts.groups, "a group of that agent or connector (repeatable)")
      ->type_name("GROUP");
  check->add_option("--service", opts.service, "the service")->type_name("NAME");
  check->add_flag("--json", opts.json, "print one JSON object");
  check->allow_extras();
  check->callback([check, &opts] { opts.unexpected = check->remaining(); });
}

} // namespace ztna
