#include "policy/policy.hpp"

#include "identity/identity.hpp"
#include "wire/text.hpp"

#include <gnutls/crypto.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <tuple>

namespace ztna::policy {

const char* to_string(RuleKind kind) {
  return kind == RuleKind::Access ? "access" : "serve";
}

const char* to_string(Effect effect) {
  return effect == Effect::Allow ? "allow" : "deny";
}

std::string Decision::explain() const {
  std::string out = allowed ? "allow: " : "deny: ";
  if (rule) {
    out += "rule [[";
    out += to_string(rule->kind);
    out += "]] #" + std::to_string(rule->index);
    if (!rule->name.empty()) out += " \"" + rule->name + "\"";
    out += " (" + source + ":" + std::to_string(rule->line) + ")";
  } else if (kind == RuleKind::Access) {
    out += "no rule allows agent '" + subject + "' to reach '" + service + "' (default deny)";
  } else {
    out += "no rule allows connector '" + subject + "' to serve '" + service + "' (default deny)";
  }
  return out;
}

namespace {

// Text from the file as it may appear inside a one-line message: control bytes become \xNN and
// anything longer than kMax bytes is cut (on a UTF-8 character boundary).
template <size_t kMax = 64> std::string printable(std::string_view text) {
  static const char* const kHex = "0123456789abcdef";
  bool cut = text.size() > kMax;
  if (cut) {
    size_t n = kMax;
    while (n > 0 && (static_cast<uint8_t>(text[n]) & 0xC0) == 0x80)
      --n;
    text = text.substr(0, n);
  }
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (cut) out += "...";
  return out;
}

std::string quoted(std::string_view text) {
  return "'" + printable(text) + "'";
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
  case toml::node_type::table:
    return "a table";
  case toml::node_type::array:
    return "an array";
  case toml::node_type::string:
    return "a string";
  case toml::node_type::integer:
    return "an integer";
  case toml::node_type::floating_point:
    return "a float";
  case toml::node_type::boolean:
    return "a boolean";
  case toml::node_type::date:
    return "a date";
  case toml::node_type::time:
    return "a time";
  case toml::node_type::date_time:
    return "a date-time";
  case toml::node_type::none:
    break;
  }
  return "nothing";
}

std::string hex_fingerprint(std::string_view bytes) {
  std::array<uint8_t, 32> digest{};
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, bytes.data(), bytes.size(), digest.data()) < 0) return {};
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 8; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

std::string plural(size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// A problem found while checking the parsed document. Only the first one in file order is
// reported, so a message never depends on the order toml++ keeps keys in.
struct Problem {
  size_t line = 0; // 0: no position (the file as a whole)
  size_t column = 0;
  std::string message;
};

} // namespace

// Turns a parsed TOML document into a Policy, or the first problem with it.
class PolicyBuilder {
public:
  explicit PolicyBuilder(std::string source) { policy_.source_ = std::move(source); }

  LoadResult build(const toml::table& doc, std::string_view text) {
    if (!check_version(doc)) return fail();
    for (auto&& [key, node] : doc) {
      if (key == "version") continue;
      if (key == "access" || key == "serve") {
        read_rules(key, node, key == "access" ? RuleKind::Access : RuleKind::Serve);
      } else {
        const char* shape = node.is_table()             ? "table ["
                            : node.is_array_of_tables() ? "table [["
                                                        : "key ";
        std::string name = node.is_table() || node.is_array_of_tables()
                               ? printable(key.str()) + (node.is_table() ? "]" : "]]")
                               : quoted(key.str());
        problem(key.source(), std::string("unknown ") + shape + name +
                                  " (expected version, [[access]], [[serve]])");
      }
    }
    if (first_) return fail();
    policy_.fingerprint_ = hex_fingerprint(text);
    policy_.text_ = std::string(text);
    if (policy_.fingerprint_.empty())
      return {nullptr, policy_.source_ + ": cannot compute the SHA-256 fingerprint"};
    return {std::make_shared<const Policy>(std::move(policy_)), {}};
  }

private:
  using Rule = Policy::Rule;

  void problem(const toml::source_region& where, std::string message) {
    ++problems_;
    std::tuple<size_t, size_t> at{where.begin.line, where.begin.column};
    if (first_ && std::tuple(first_->line, first_->column) <= at) return;
    first_ = Problem{where.begin.line, where.begin.column, std::move(message)};
  }

  LoadResult fail() const {
    std::string where = policy_.source_;
    if (first_->line > 0) {
      where += ":" + std::to_string(first_->line);
      if (first_->column > 0) where += ":" + std::to_string(first_->column);
    }
    return {nullptr, where + ": " + first_->message};
  }

  // The version decides how to read everything else, so its problems come first.
  bool check_version(const toml::table& doc) {
    const toml::node* v = doc.get("version");
    if (!v) {
      first_ = Problem{0, 0, "missing version (the file must say 'version = 1')"};
      return false;
    }
    if (!v->is_integer()) {
      problem(v->source(), std::string("version: expected the integer 1, got ") + type_name(*v));
      return false;
    }
    int64_t version = v->as_integer()->get();
    if (version != kVersion) {
      problem(v->source(), "unsupported policy version " + std::to_string(version) +
                               " (this build reads version " + std::to_string(kVersion) + ")");
      return false;
    }
    return true;
  }

  void read_rules(const toml::key& key, const toml::node& node, RuleKind kind) {
    const std::string header = std::string("[[") + to_string(kind) + "]]";
    const toml::array* rules = node.as_array();
    if (!rules) {
      problem(key.source(), std::string(to_string(kind)) + ": expected an array of tables (write " +
                                header + "), got " + type_name(node));
      return;
    }
    auto& out = kind == RuleKind::Access ? policy_.access_ : policy_.serve_;
    for (size_t i = 0; i < rules->size(); ++i) {
      const toml::node& element = *rules->get(i);
      std::string label = header + " #" + std::to_string(i + 1);
      if (const toml::table* table = element.as_table()) {
        read_rule(*table, kind, label, i + 1, out);
      } else {
        problem(element.source(), label + ": expected a table, got " + type_name(element));
      }
    }
  }

  void read_rule(const toml::table& table, RuleKind kind, const std::string& label, size_t index,
                 std::vector<Rule>& out) {
    const bool access = kind == RuleKind::Access;
    const char* who = access ? "agents" : "connectors";
    const std::string expected =
        access ? "name, agents, groups, services, effect" : "name, connectors, groups, services";
    Rule rule;
    rule.ref.kind = kind;
    rule.ref.index = index;
    rule.ref.line = table.source().begin.line;
    const size_t problems_before = problems_;
    for (auto&& [key, node] : table) {
      const std::string field = label + ": " + std::string(key.str());
      if (key == "name") {
        const auto* s = node.as_string();
        if (!s) {
          problem(node.source(), field + ": expected a string, got " + type_name(node));
        } else if (s->get().empty() || !wire::is_valid_reason(s->get())) {
          problem(node.source(),
                  field + ": invalid rule name " + quoted(s->get()) +
                      " (1 to 255 bytes of printable UTF-8, shown by 'policy check')");
        } else {
          rule.ref.name = s->get();
        }
      } else if (key == who) {
        read_list(node, field, Entry::Principal, who, rule.names);
      } else if (key == "groups") {
        read_list(node, field, Entry::Group, who, rule.groups);
      } else if (key == "services") {
        read_list(node, field, Entry::Service, who, rule.services);
      } else if (key == "effect" && access) {
        const auto* s = node.as_string();
        if (!s) {
          problem(node.source(),
                  field + ": expected \"allow\" or \"deny\", got " + type_name(node));
        } else if (s->get() == "allow" || s->get() == "deny") {
          rule.ref.effect = s->get() == "allow" ? Effect::Allow : Effect::Deny;
        } else {
          problem(node.source(),
                  field + ": expected \"allow\" or \"deny\", got " + quoted(s->get()));
        }
      } else {
        std::string hint = key == "effect" ? "[[serve]] rules only allow; " : "";
        problem(key.source(), label + ": unknown key " + quoted(key.str()) + " (" + hint +
                                  "expected " + expected + ")");
      }
    }
    // A misspelt key is reported as itself, not as the key it fails to provide.
    if (problems_ != problems_before) return;
    if (!table.contains("services"))
      problem(table.source(), label + ": missing required key 'services'");
    if (!table.contains(who) && !table.contains("groups"))
      problem(table.source(), label + ": missing " + who + " or groups (a rule needs one or both)");
    if (problems_ == problems_before) out.push_back(std::move(rule));
  }

  enum class Entry { Principal, Group, Service };

  // Reads a non-empty list of distinct names; "*" alone means any (not for groups). `who` is
  // the rule's list of names ("agents" or "connectors"), for the hint about "*".
  void read_list(const toml::node& node, const std::string& field, Entry entry, const char* who,
                 std::vector<std::string>& out) {
    const toml::array* list = node.as_array();
    if (!list) {
      problem(node.source(), field + ": expected an array of strings, got " + type_name(node));
      return;
    }
    if (list->empty()) {
      problem(node.source(), field + ": empty list");
      return;
    }
    std::set<std::string_view> seen;
    for (size_t i = 0; i < list->size(); ++i) {
      const toml::node& element = *list->get(i);
      const auto* s = element.as_string();
      if (!s) {
        problem(element.source(), field + ": entry #" + std::to_string(i + 1) + " is " +
                                      type_name(element) + ", not a string");
        continue;
      }
      const std::string& value = s->get();
      if (value == "*") {
        if (entry == Entry::Group)
          problem(element.source(),
                  field + ": '*' is not a group (to match anyone, write " + who + " = [\"*\"])");
        else if (list->size() > 1)
          problem(element.source(), field + ": '*' matches everything and must be the only entry");
      } else if (entry == Entry::Service && !wire::is_valid_name(value)) {
        problem(element.source(), field + ": invalid name " + quoted(value) +
                                      " (1 to 255 bytes of UTF-8, no spaces or control "
                                      "characters)");
      } else if (entry != Entry::Service && !is_valid_identity_name(value)) {
        problem(element.source(), field + ": invalid name " + quoted(value) +
                                      " (letters, digits, '-' and '.', 1 to 64 characters, "
                                      "starting and ending with a letter or digit, no '..')");
      }
      if (!seen.insert(value).second)
        problem(element.source(), field + ": duplicate entry " + quoted(value));
      out.push_back(value);
    }
  }

  Policy policy_;
  std::optional<Problem> first_;
  size_t problems_ = 0;
};

LoadResult Policy::parse(std::string_view text, std::string source) {
  try {
    PolicyBuilder builder(source);
#if TOML_EXCEPTIONS
    toml::table doc;
    try {
      doc = toml::parse(text, std::string_view(source));
    } catch (const toml::parse_error& e) {
      const auto& at = e.source().begin;
      return {nullptr, source + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                           ": " + printable<512>(e.description())};
    }
#else
    toml::parse_result parsed = toml::parse(text, std::string_view(source));
    if (!parsed) {
      const auto& at = parsed.error().source().begin;
      return {nullptr, source + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                           ": " + printable<512>(parsed.error().description())};
    }
    const toml::table& doc = parsed.table();
#endif
    return builder.build(doc, text);
  } catch (const std::exception& e) {
    return {nullptr, source + ": cannot load the policy: " + e.what()};
  }
}

LoadResult Policy::load_file(const std::string& path) {
  // libstdc++ opens and reads through the C library, so errno says what went wrong.
  auto failed = [&](const char* what) {
    std::string why = errno != 0 ? std::string(" (") + std::strerror(errno) + ")" : "";
    return LoadResult{nullptr, path + ": cannot " + what + " the policy file" + why};
  };
  try {
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) return failed("open");
    std::string text(kMaxFileSize + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) return failed("read");
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileSize)
      return {nullptr,
              path + ": policy file larger than " + std::to_string(kMaxFileSize) + " bytes"};
    return parse(text, path);
  } catch (const std::exception& e) {
    return {nullptr, path + ": cannot read the policy file: " + e.what()};
  }
}

Decision Policy::may_access(const Principal& agent, std::string_view service) const {
  return decide(RuleKind::Access, access_, agent, service);
}

Decision Policy::may_serve(const Principal& connector, std::string_view service) const {
  return decide(RuleKind::Serve, serve_, connector, service);
}

namespace {

bool has(const std::vector<std::string>& list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// The file format allows "*" only as the sole entry of a list.
bool any(const std::vector<std::string>& list) {
  return list.size() == 1 && list.front() == "*";
}

} // namespace

Decision Policy::decide(RuleKind kind, const std::vector<Rule>& rules, const Principal& who,
                        std::string_view service) const {
  Decision d;
  d.kind = kind;
  d.subject = who.name;
  d.service = std::string(service);
  d.source = source_;
  auto matches = [&](const Rule& rule) {
    if (!any(rule.services) && !has(rule.services, service)) return false;
    if (any(rule.names) || has(rule.names, who.name)) return true;
    return std::any_of(who.groups.begin(), who.groups.end(),
                       [&](const std::string& g) { return has(rule.groups, g); });
  };
  const Rule* allow = nullptr;
  for (const Rule& rule : rules) {
    if (!matches(rule)) continue;
    if (rule.ref.effect == Effect::Deny) {
      d.rule = rule.ref; // any matching deny wins over every allow
      return d;
    }
    if (!allow) allow = &rule;
  }
  if (allow) {
    d.allowed = true;
    d.rule = allow->ref;
  }
  return d;
}

std::string Policy::summary() const {
  return plural(access_.size(), "access rule") + ", " + plural(serve_.size(), "serve rule") +
         ", fingerprint " + fingerprint_;
}

} // namespace ztna::policy
