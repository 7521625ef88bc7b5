#include "io/daemon_cli.hpp"

#include <algorithm>
#include <iostream>
#include <stdexcept>

namespace ztna::io {

std::vector<std::string> expand_config_file(int argc, char** argv) {
  std::vector<std::string> in(argv, argv + argc), out;
  std::string file;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == "--config" && i + 1 < in.size()) {
      file = in[++i];
    } else if (in[i].rfind("--config=", 0) == 0) {
      file = in[i].substr(9);
    } else {
      out.push_back(in[i]);
    }
  }
  if (file.empty()) return out;
  auto run = std::find(out.begin(), out.end(), "run");
  if (run == out.end()) return out;
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(file);
  } catch (const std::exception& e) {
    throw std::runtime_error("--config " + file + ": " + e.what());
  }
  std::vector<std::string> extra;
  for (auto& item : items) {
    std::string flag = "--" + item.name;
    // The command line wins, as "--name value" or "--name=value".
    if (std::any_of(out.begin(), out.end(),
                    [&](const std::string& a) { return a == flag || a.rfind(flag + "=", 0) == 0; }))
      continue;
    for (auto& value : item.inputs) {
      // A switch such as relay-only: "true" sets it, "false" leaves it off.
      if (value == "true" || value == "false") {
        if (value == "true") extra.push_back(flag);
        continue;
      }
      extra.push_back(flag);
      extra.push_back(value);
    }
  }
  out.insert(run + 1, extra.begin(), extra.end());
  return out;
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args;
  try {
    args = expand_config_file(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

void add_config_option(CLI::App* run) {
  static std::string ignored;
  run->add_option("--config", ignored,
                  "read options from this file: key = value lines with the flags' names, "
                  "arrays for repeatable options");
}

void add_identity_options(CLI::App* run, quic::TlsFiles& tls, std::string& status_socket,
                          std::string& log_level, const std::string& who) {
  run->add_option("--ca", tls.ca, "deployment CA certificate (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--cert", tls.cert, "this " + who + "'s certificate (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--key", tls.key, "this " + who + "'s private key (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--crl", tls.crl,
                  "the CA's certificate revocation list (PEM, certs/make-certs writes crl.pem); "
                  "reloaded on SIGHUP")
      ->check(CLI::ExistingFile);
  run->add_option("--status-socket", status_socket, "Unix socket serving status")
      ->capture_default_str();
  run->add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
}

CLI::App* add_status_subcommand(CLI::App& app, std::string& status_socket, bool& json,
                                const std::string& who) {
  auto* status = app.add_subcommand("status", "print the state of a running " + who);
  status->add_option("--status-socket", status_socket, "Unix socket of the daemon")
      ->capture_default_str();
  status->add_flag("--json", json, "machine-readable output");
  return status;
}

void add_intermediate_options(CLI::App* run, IntermediateTarget& target) {
  run->add_option("--intermediate", target.intermediates,
                  "intermediate HOST:PORT (repeatable; a host name with several addresses "
                  "names several intermediates)")
      ->required();
  run->add_option("--intermediate-name", target.intermediate_name,
                  "name in the intermediates' certificates (default: the host of each)");
  run->add_option("--listen", target.listen, "local UDP address")->capture_default_str();
}

ResolvedTarget resolve(const IntermediateTarget& target) {
  ResolvedTarget r;
  auto bind = Address::parse(target.listen);
  if (!bind) throw std::runtime_error("--listen: not an IP:port: " + target.listen);
  r.listen = *bind;
  for (const auto& text : target.intermediates) {
    auto all = Address::resolve_all(text);
    if (all.empty()) throw std::runtime_error("--intermediate: cannot resolve " + text);
    std::string name = target.intermediate_name;
    if (name.empty()) {
      name = text.substr(0, text.rfind(':'));
      if (name.size() > 2 && name.front() == '[') name = name.substr(1, name.size() - 2);
    }
    for (auto& a : all) {
      bool seen = false;
      for (auto& e : r.intermediates)
        seen = seen || e.address == a;
      if (!seen) r.intermediates.push_back({a, name});
    }
  }
  if (r.intermediates.size() > 32)
    throw std::runtime_error("--intermediate: at most 32 intermediates, not " +
                             std::to_string(r.intermediates.size()));
  return r;
}

} // namespace ztna::io
