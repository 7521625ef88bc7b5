// ztna-handshake-load: handshake load against an intermediate, for the integration tests and
// scripts/bench-handshakes. Two modes, each ending with one JSON line of figures on stdout:
//
//   spoof      N genuine client Initials, each the first flight of a fresh
//              quic::Connection::client (a real ClientHello with connection IDs and key shares
//              of its own), each sent from a source address of its own (127.A.B.C, rotating
//              through 127.0.0.0/8, or all from --source) by a fresh UDP socket that is closed
//              right after the send: nobody ever answers the intermediate's Retry or handshake.
//              Paced to --rate, or as fast as the socket calls go. All Initials are built before
//              the first is sent. With --linger it stays after its report until SIGTERM.
//
//   handshake  M complete control handshakes, K in progress at a time, spread over --sources
//              source addresses. ngtcp2's client follows a Retry by itself. A handshake counts
//              when it is confirmed (HANDSHAKE_DONE: the intermediate accepted our certificate);
//              with --register, when the Hello is answered with ObservedAddress. Each registered
//              connection needs an identity of its own (the intermediate replaces a second
//              registration of one identity), so --register mints an agent certificate per
//              connection from the CA's key (--ca-key), before the clock starts. With --hold it
//              stays after the JSON line until SIGTERM or SIGINT, the registered connections
//              open (with keepalives), so that the intermediate's memory can be read meanwhile.
//
//   ztna-handshake-load spoof --intermediate 127.0.0.1:4433 --ca ca.pem --cert agent.pem
//                       --key agent.key [--count 10000] [--rate 2000] [--source 127.9.9.9]
//   ztna-handshake-load handshake --intermediate 127.0.0.1:4433 --ca ca.pem --cert agent.pem
//                       --key agent.key [--total 1000] [--concurrency 32]
//                       [--register --ca-key ca.key] [--hold]
//
// Exit status: 0 if every Initial was sent (spoof; also when SIGTERM stops it early, after its
// report) or every handshake completed (handshake), 1 otherwise, 2 on a usage or setup error.
#include "control/control_stream.hpp"
#include "io/clock.hpp"
#include "io/endpoint.hpp"
#include "io/quic_peer.hpp"
#include "io/random.hpp"
#include "wire/control_message.hpp"

#include <CLI/CLI.hpp>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>

using namespace ztna;

namespace {

double seconds_since(quic::Timestamp t0) {
  return static_cast<double>(io::now() - t0) / 1e9;
}

// Source addresses 127.A.B.C from `first` on: the last octet skips 0 and 255, and the sequence
// never reaches 127.0.0.1, where the real daemons of a test live.
class SourceAddresses {
public:
  explicit SourceAddresses(const Address& first) {
    if (first.is_v6()) throw std::runtime_error("source addresses must be IPv4 (127.x.y.z)");
    const auto* in = reinterpret_cast<const sockaddr_in*>(first.sa());
    next_ = ntohl(in->sin_addr.s_addr);
    if ((next_ >> 24) != 127) throw std::runtime_error("source addresses must be in 127.0.0.0/8");
  }
  Address next() {
    for (;;) {
      uint32_t ip = next_++;
      if ((ip >> 24) != 127) { // wrapped around: start over at 127.1.0.1
        ip = (127u << 24) | (1u << 16) | 1u;
        next_ = ip + 1;
      }
      const uint32_t last = ip & 0xff;
      if (last == 0 || last == 255 || ip == ((127u << 24) | 1u)) continue;
      return Address::ipv4(ip, 0);
    }
  }

private:
  uint32_t next_;
};

quic::ConnectionConfig client_config(quic::TlsIdentityPtr tls, const std::string& server_name) {
  quic::ConnectionConfig cfg;
  cfg.tls = std::move(tls);
  cfg.alpn = std::string(wire::kControlAlpn);
  cfg.server_name = server_name;
  cfg.peer.roles = {Role::Intermediate};
  cfg.peer.server_auth = true;
  cfg.max_bidi_streams = 0; // as the daemons' control client: only we open the stream
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// spoof

struct NoEvents : quic::ConnectionEvents {
  void on_stream_data(int64_t, std::span<const uint8_t>, bool) override {}
};

// The first flight of a fresh client connection: its Initial datagram(s).
std::vector<std::vector<uint8_t>> first_flight(const quic::ConnectionConfig& cfg,
                                               const Address& target) {
  NoEvents events;
  std::string error;
  quic::Path path{*Address::parse("127.0.0.1:9"), target}; // the bytes do not depend on it
  auto conn = quic::Connection::client(cfg, path, events, io::now(), error);
  if (!conn) throw std::runtime_error("cannot make a client connection: " + error);
  std::vector<std::vector<uint8_t>> out;
  conn->write(io::now(), [&](const quic::Path&, std::span<const uint8_t> p) {
    out.emplace_back(p.begin(), p.end());
  });
  if (out.empty()) throw std::runtime_error("the client connection wrote no Initial");
  return out;
}

void sleep_until(quic::Timestamp t) {
  // io::now() is CLOCK_MONOTONIC (steady_clock on Linux): pacing, not synchronisation.
  timespec ts{static_cast<time_t>(t / 1'000'000'000), static_cast<long>(t % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// SIGTERM and SIGINT, blocked so that the spoof loop and --linger take them when they choose.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

bool stop_requested() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}

int run_spoof(const quic::ConnectionConfig& cfg, const Address& target, size_t count, double rate,
              const std::string& first_source, const std::string& one_source, bool linger) {
  auto t_gen = io::now();
  std::vector<std::vector<std::vector<uint8_t>>> initials;
  initials.reserve(count);
  size_t bytes = 0;
  for (size_t i = 0; i < count; ++i) {
    initials.push_back(first_flight(cfg, target));
    for (auto& d : initials.back())
      bytes += d.size();
  }
  const double gen_s = seconds_since(t_gen);
  std::optional<Address> fixed;
  if (!one_source.empty()) {
    fixed =
        Address::parse(one_source.find(':') == std::string::npos ? one_source + ":0" : one_source);
    if (!fixed) throw std::runtime_error("--source: not an IPv4 address: " + one_source);
  }
  auto first = Address::parse(first_source + ":0");
  if (!first) throw std::runtime_error("--first-source: not an IPv4 address: " + first_source);
  SourceAddresses sources(*first);
  std::cerr << "spoof: " << count << " Initials built in " << gen_s << " s; sending to "
            << target.to_string()
            << (fixed ? " from " + fixed->ip_string() : " from " + first_source + " on")
            << std::endl;

  uint64_t sent = 0, send_errors = 0, bind_errors = 0;
  std::string last_error;
  const auto t0 = io::now();
  size_t i = 0;
  for (; i < count; ++i) {
    if (i % 64 == 0 && stop_requested()) break; // stopped early: report what went out
    if (rate > 0)
      sleep_until(t0 + static_cast<quic::Timestamp>(static_cast<double>(i) * 1e9 / rate));
    Address src = fixed ? *fixed : sources.next();
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + strerror(errno));
    if (::bind(fd, src.sa(), src.len()) != 0) {
      bind_errors++;
      last_error = "bind " + src.ip_string() + ": " + strerror(errno);
      ::close(fd);
      continue;
    }
    bool ok = true;
    for (auto& d : initials[i]) {
      if (::sendto(fd, d.data(), d.size(), 0, target.sa(), target.len()) !=
          static_cast<ssize_t>(d.size())) {
        ok = false;
        last_error = std::string("sendto: ") + strerror(errno);
      }
    }
    ::close(fd);
    ok ? sent++ : send_errors++;
  }
  const double secs = seconds_since(t0);
  nlohmann::json j{{"mode", "spoof"},
                   {"target", target.to_string()},
                   {"initials", count},
                   {"sent", sent},
                   {"send_errors", send_errors},
                   {"bind_errors", bind_errors},
                   {"distinct_sources", fixed ? 1 : count},
                   {"bytes_per_initial", count ? bytes / count : 0},
                   {"build_seconds", std::round(gen_s * 1000) / 1000},
                   {"seconds", std::round(secs * 1000) / 1000},
                   {"rate", secs > 0 ? std::round(static_cast<double>(sent) / secs) : 0.0}};
  if (!last_error.empty()) j["last_error"] = last_error;
  std::cout << j.dump() << std::endl;
  if (i < count) return 0; // told to stop early: what went out is reported, not a failure
  if (linger) {
    // Stay until told: a test runs us as a long-lived process and stops us when it likes.
    auto set = stop_signals();
    int sig = 0;
    sigwait(&set, &sig);
  }
  return sent == count ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Agent certificates minted from the CA's key, shaped like certs/make-certs's (certs/README.md).

void check(int rv, const char* what) {
  if (rv < 0)
    throw std::runtime_error(std::string("minting: ") + what + ": " + gnutls_strerror(rv));
}

gnutls_datum_t read_datum(const std::string& file, std::string& buffer) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file);
  buffer.assign(std::istreambuf_iterator<char>(in), {});
  return gnutls_datum_t{reinterpret_cast<unsigned char*>(buffer.data()),
                        static_cast<unsigned>(buffer.size())};
}

class Minter {
public:
  Minter(const std::string& ca_file, const std::string& ca_key_file) : ca_file_(ca_file) {
    std::string buf;
    check(gnutls_x509_crt_init(&ca_), "crt_init");
    auto d = read_datum(ca_file, buf);
    check(gnutls_x509_crt_import(ca_, &d, GNUTLS_X509_FMT_PEM), "import the CA certificate");
    check(gnutls_x509_privkey_init(&ca_key_), "privkey_init");
    d = read_datum(ca_key_file, buf);
    check(gnutls_x509_privkey_import2(ca_key_, &d, GNUTLS_X509_FMT_PEM, nullptr, 0),
          "import the CA key");
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ztna-handshake-load.XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~Minter() {
    rmdir(dir_.c_str());
    gnutls_x509_privkey_deinit(ca_key_);
    gnutls_x509_crt_deinit(ca_);
  }
  Minter(const Minter&) = delete;
  Minter& operator=(const Minter&) = delete;

  // An agent identity NAME: ECDSA P-256, CN = SAN DNS = NAME, URI ztna://agent/NAME,
  // clientAuth, digitalSignature, CA:FALSE, a random 128-bit serial, valid for a day.
  quic::TlsIdentityPtr agent(const std::string& name) {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    check(gnutls_x509_privkey_init(&key), "privkey_init");
    check(gnutls_x509_crt_init(&crt), "crt_init");
    std::string cert_pem, key_pem;
    try {
      check(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
            "privkey_generate");
      check(gnutls_x509_crt_set_version(crt, 3), "set_version");
      unsigned char serial[16];
      check(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial), "rnd");
      serial[0] = (serial[0] & 0x7f) | 0x01;
      check(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), "set_serial");
      const time_t t = time(nullptr);
      check(gnutls_x509_crt_set_activation_time(crt, t - 3600), "activation");
      check(gnutls_x509_crt_set_expiration_time(crt, t + 86400), "expiration");
      check(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name.data(),
                                          static_cast<unsigned>(name.size())),
            "set_dn");
      check(gnutls_x509_crt_set_key(crt, key), "set_key");
      unsigned char id[64];
      size_t id_len = sizeof id;
      check(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &id_len), "get_key_id");
      check(gnutls_x509_crt_set_subject_key_id(crt, id, id_len), "set_subject_key_id");
      check(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), "set_basic_constraints");
      check(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "set_key_usage");
      check(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name.data(),
                                                 static_cast<unsigned>(name.size()),
                                                 GNUTLS_FSAN_SET),
            "set_subject_alt_name");
      const std::string uri = "ztna://agent/" + name;
      check(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, uri.data(),
                                                 static_cast<unsigned>(uri.size()),
                                                 GNUTLS_FSAN_APPEND),
            "set_subject_alt_name URI");
      check(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0),
            "set_key_purpose_oid");
      id_len = sizeof id;
      check(gnutls_x509_crt_get_subject_key_id(ca_, id, &id_len, nullptr), "CA key id");
      check(gnutls_x509_crt_set_authority_key_id(crt, id, id_len), "set_authority_key_id");
      check(gnutls_x509_crt_sign2(crt, ca_, ca_key_, GNUTLS_DIG_SHA256, 0), "sign");
      gnutls_datum_t d{};
      check(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), "crt_export2");
      cert_pem.assign(reinterpret_cast<char*>(d.data), d.size);
      gnutls_free(d.data);
      check(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN,
                                              &d),
            "privkey_export2_pkcs8");
      key_pem.assign(reinterpret_cast<char*>(d.data), d.size);
      gnutls_free(d.data);
    } catch (...) {
      gnutls_x509_crt_deinit(crt);
      gnutls_x509_privkey_deinit(key);
      throw;
    }
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    // TlsIdentity loads files: write them, load, and remove them again.
    quic::TlsFiles files;
    files.ca = ca_file_;
    files.cert = write(name + ".pem", cert_pem);
    files.key = write(name + ".key", key_pem);
    try {
      auto identity = std::make_shared<quic::TlsIdentity>(files, Role::Agent);
      std::remove(files.cert.c_str());
      std::remove(files.key.c_str());
      return identity;
    } catch (...) {
      std::remove(files.cert.c_str());
      std::remove(files.key.c_str());
      throw;
    }
  }

private:
  std::string write(const std::string& name, const std::string& content) {
    std::string file = dir_ + "/" + name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + file);
    return file;
  }

  std::string ca_file_;
  std::string dir_;
  gnutls_x509_crt_t ca_ = nullptr;
  gnutls_x509_privkey_t ca_key_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// handshake

struct HandshakeOptions {
  size_t total = 1000;
  size_t concurrency = 32;
  size_t sources = 0; // 0: one per 4 concurrent handshakes
  bool register_ = false;
  bool hold = false;
  int timeout_s = 10;
  std::string first_source = "127.32.0.1";
  std::string name_prefix = "load";
};

class Load;

// One client connection: handshake, then (with --register) Hello until ObservedAddress.
struct Client : quic::ConnectionEvents {
  Client(Load& owner, size_t index, bool registers)
      : owner(owner), index(index), registers(registers) {}
  void on_handshake_completed() override;
  void on_handshake_confirmed() override;
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override;

  Load& owner;
  size_t index;
  bool registers; // send Hello after the handshake, done at ObservedAddress
  quic::Timestamp started = 0;
  bool done = false;
  std::string error; // what the intermediate said, if it said something
  std::unique_ptr<io::QuicPeer> peer;
  ControlStream stream;
};

class Load {
public:
  Load(boost::asio::io_context& io, HandshakeOptions options, quic::ConnectionConfig base,
       Address target, std::vector<quic::TlsIdentityPtr> identities)
      : io_(io), options_(std::move(options)), base_(std::move(base)), target_(target),
        identities_(std::move(identities)), signals_(io, SIGTERM, SIGINT), deadline_(io) {
    auto first = Address::parse(options_.first_source + ":0");
    if (!first)
      throw std::runtime_error("--first-source: not an IPv4 address: " + options_.first_source);
    SourceAddresses addresses(*first);
    std::array<uint8_t, 32> secret;
    io::random_fill(secret);
    for (size_t i = 0; i < options_.sources; ++i) {
      endpoints_.push_back(std::make_unique<io::Endpoint>(io, addresses.next(), secret));
      endpoints_.back()->start([](const Address&, std::span<const uint8_t>) {});
    }
  }

  void start() {
    signals_.async_wait([this](boost::system::error_code ec, int) {
      if (!ec) stop("handshake load: stopped by a signal");
    });
    t0_ = io::now();
    while (in_progress_ < options_.concurrency && started_ < options_.total)
      start_one();
    if (options_.total == 0) finish_run();
  }

  void completed(Client& c) {
    if (c.done) return;
    c.done = true;
    in_progress_--;
    completed_++;
    t_last_ = io::now();
    latencies_ms_.push_back(static_cast<double>(t_last_ - c.started) / 1e6);
    // Without --register the connection has served its purpose; registered ones stay.
    if (!options_.register_) c.peer->close(0, "handshake load: done");
    next();
  }

  // The connection ended (we closed it, it failed, or the intermediate closed it).
  void gone(size_t index, const std::string& why) {
    auto it = clients_.find(index);
    if (it == clients_.end()) return;
    auto& c = *it->second;
    if (!c.done) {
      c.done = true;
      in_progress_--;
      failed_++;
      t_last_ = io::now();
      std::string reason = c.error.empty() ? why : c.error + " (" + why + ")";
      if (errors_[reason]++ == 0)
        std::cerr << "handshake " << index << " failed: " << reason << "\n";
      next();
    } else if (options_.register_ && !stopping_) {
      lost_after_registration_++;
      if (errors_["lost after registration: " + why]++ == 0)
        std::cerr << "connection " << index << " lost after registration: " << why << "\n";
    }
    // Destroyed on a fresh loop turn, not inside the QuicPeer's own call; and never after the
    // endpoints, whose routers the peers leave when they go.
    retired_.push_back(std::move(it->second));
    clients_.erase(it);
    if (retired_.size() == 1) boost::asio::post(io_, [this] { retired_.clear(); });
    if (stopping_ && clients_.empty()) shutdown();
  }

  size_t registered_open() const {
    size_t n = 0;
    for (auto& [i, c] : clients_)
      n += c->done && !c->peer->conn().finished();
    return n;
  }

  bool all_completed() const { return completed_ == options_.total; }

private:
  void start_one() {
    const size_t index = started_++;
    auto& ep = *endpoints_[index % endpoints_.size()];
    auto cfg = base_;
    if (!identities_.empty()) cfg.tls = identities_[index];
    cfg.reset_secret = ep.reset_secret();
    if (options_.register_) cfg.keepalive = std::chrono::seconds(10);
    cfg.handshake_timeout = std::chrono::seconds(options_.timeout_s);
    auto c = std::make_unique<Client>(*this, index, options_.register_);
    c->started = io::now();
    std::string error;
    auto conn =
        quic::Connection::client(cfg, {ep.socket().local(), target_}, *c, c->started, error);
    in_progress_++;
    if (!conn) {
      c->done = true;
      in_progress_--;
      failed_++;
      if (errors_[error]++ == 0)
        std::cerr << "cannot start handshake " << index << ": " << error << "\n";
      next();
      return;
    }
    c->peer = std::make_unique<io::QuicPeer>(
        io_, &ep.router(),
        [&ep](const quic::Path& p, std::span<const uint8_t> pkt) { ep.transmit(p, pkt); });
    c->peer->on_finished([this, index](const std::string& why) { gone(index, why); });
    auto* raw = c.get();
    clients_.emplace(index, std::move(c));
    raw->peer->attach(std::move(conn));
  }

  void next() {
    if (stopping_) return;
    if (started_ < options_.total) {
      // From a fresh loop turn: we may be inside a callback of the connection that finished.
      boost::asio::post(io_, [this] {
        if (!stopping_ && started_ < options_.total && in_progress_ < options_.concurrency)
          start_one();
      });
      return;
    }
    if (in_progress_ == 0 && !reported_) finish_run();
  }

  void finish_run() {
    reported_ = true;
    const double secs = static_cast<double>((t_last_ > t0_ ? t_last_ : io::now()) - t0_) / 1e9;
    std::sort(latencies_ms_.begin(), latencies_ms_.end());
    auto pct = [&](double p) {
      if (latencies_ms_.empty()) return 0.0;
      size_t i = static_cast<size_t>(p * static_cast<double>(latencies_ms_.size() - 1));
      return std::round(latencies_ms_[i] * 100) / 100;
    };
    nlohmann::json errors = nlohmann::json::object();
    for (auto& [e, n] : errors_)
      errors[e] = n;
    nlohmann::json j{
        {"mode", "handshake"},
        {"target", target_.to_string()},
        {"register", options_.register_},
        {"total", options_.total},
        {"concurrency", options_.concurrency},
        {"sources", endpoints_.size()},
        {"completed", completed_},
        {"failed", failed_},
        {"seconds", std::round(secs * 1000) / 1000},
        {"rate", secs > 0 ? std::round(static_cast<double>(completed_) / secs * 10) / 10 : 0.0},
        {"latency_ms", {{"p50", pct(0.5)}, {"p90", pct(0.9)}, {"p99", pct(0.99)}}},
        {"errors", errors}};
    if (options_.register_) j["registered_open"] = registered_open();
    if (options_.hold) j["holding"] = true;
    std::cout << j.dump() << std::endl;
    if (!options_.hold) stop("handshake load: done");
  }

  // `why` must be a string literal: a close from inside an ngtcp2 callback is sent later, and
  // quic::Connection::close keeps only a pointer to its reason until then.
  void stop(const char* why) {
    if (stopping_) return;
    stopping_ = true;
    if (!reported_) std::cerr << "stopping (" << why << ") before every handshake was done\n";
    signals_.cancel();
    if (clients_.empty()) {
      shutdown();
      return;
    }
    for (auto& [i, c] : clients_)
      c->peer->close(0, why);
    // Everything closed is reported through gone(); this is only a backstop.
    deadline_.expires_after(std::chrono::seconds(3));
    deadline_.async_wait([this](boost::system::error_code ec) {
      if (!ec) shutdown();
    });
  }

  // The last CONNECTION_CLOSEs may still sit in a socket's send batch: out with them first.
  void shutdown() {
    for (auto& ep : endpoints_)
      ep->stop();
    deadline_.cancel();
    io_.stop();
  }

  boost::asio::io_context& io_;
  HandshakeOptions options_;
  quic::ConnectionConfig base_;
  Address target_;
  std::vector<quic::TlsIdentityPtr> identities_;
  std::vector<std::unique_ptr<io::Endpoint>> endpoints_;
  std::map<size_t, std::unique_ptr<Client>> clients_;
  std::vector<std::unique_ptr<Client>> retired_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer deadline_;
  size_t started_ = 0, in_progress_ = 0, completed_ = 0, failed_ = 0;
  size_t lost_after_registration_ = 0;
  std::map<std::string, size_t> errors_;
  std::vector<double> latencies_ms_;
  quic::Timestamp t0_ = 0, t_last_ = 0;
  bool stopping_ = false, reported_ = false;
};

void Client::on_handshake_completed() {
  if (!registers) return;
  if (!stream.open(peer->conn())) {
    peer->close(static_cast<uint64_t>(wire::ErrorCode::Internal), "cannot open control stream");
    return;
  }
  stream.send(peer->conn(), wire::Hello{wire::Role::Agent, {}});
  peer->schedule_flush();
}

void Client::on_handshake_confirmed() {
  if (!registers) owner.completed(*this);
}

void Client::on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool) {
  std::vector<wire::ControlMessage> messages;
  if (!stream.on_data(peer->conn(), stream_id, data, messages)) {
    error = "malformed control data: " + stream.error();
    peer->close(static_cast<uint64_t>(wire::ErrorCode::Malformed), stream.error());
    return;
  }
  for (auto& m : messages) {
    if (std::holds_alternative<wire::ObservedAddress>(m)) owner.completed(*this);
    if (auto* e = std::get_if<wire::ErrorMessage>(&m))
      error = std::string("intermediate: ") + wire::to_string(e->code) + ": " + e->reason;
  }
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"handshake load against a ztna-intermediate (tests and benchmarks)"};
  app.require_subcommand(1);
  std::string intermediate, server_name = "ztna-intermediate.test";
  quic::TlsFiles tls;
  auto common = [&](CLI::App* sub) {
    sub->add_option("--intermediate", intermediate, "the intermediate's UDP address (IP:port)")
        ->required();
    sub->add_option("--intermediate-name", server_name,
                    "the name its certificate carries (checked by completed handshakes)")
        ->capture_default_str();
    sub->add_option("--ca", tls.ca, "the deployment CA (PEM)")
        ->required()
        ->check(CLI::ExistingFile);
    sub->add_option("--cert", tls.cert, "an agent certificate for the ClientHellos (PEM)")
        ->required()
        ->check(CLI::ExistingFile);
    sub->add_option("--key", tls.key, "its key (PEM)")->required()->check(CLI::ExistingFile);
  };

  auto* spoof = app.add_subcommand("spoof", "client Initials from addresses that never answer");
  common(spoof);
  size_t count = 10000;
  double rate = 0;
  std::string spoof_first = "127.16.0.1", one_source;
  spoof->add_option("--count", count, "Initials to send")->capture_default_str();
  spoof->add_option("--rate", rate, "Initials per second (0 = as fast as possible)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  spoof
      ->add_option("--first-source", spoof_first,
                   "the first source address; each Initial takes the next one")
      ->capture_default_str();
  spoof->add_option("--source", one_source, "send every Initial from this one address instead");
  bool linger = false;
  spoof->add_flag("--linger", linger,
                  "after the report, wait for SIGTERM or SIGINT and then exit (0 if every Initial "
                  "was sent)");

  auto* hs = app.add_subcommand("handshake", "complete handshakes, K at a time");
  common(hs);
  HandshakeOptions ho;
  ho.name_prefix = "load-" + std::to_string(getpid());
  std::string ca_key;
  hs->add_option("--total", ho.total, "handshakes in all (M)")->capture_default_str();
  hs->add_option("--concurrency", ho.concurrency, "handshakes in progress at a time (K)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  hs->add_option("--sources", ho.sources,
                 "source addresses (sockets) the connections are spread over (default: one per "
                 "4 concurrent handshakes, under the intermediate's per-source limit)");
  hs->add_option("--first-source", ho.first_source, "the first source address")
      ->capture_default_str();
  hs->add_option("--timeout", ho.timeout_s, "seconds a handshake may take")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));
  hs->add_flag("--register", ho.register_,
               "register each connection with a Hello, under an agent identity of its own");
  hs->add_option("--ca-key", ca_key, "the CA's private key, to mint those identities (--register)")
      ->check(CLI::ExistingFile);
  hs->add_option("--name-prefix", ho.name_prefix, "minted identities are PREFIX-0, PREFIX-1, ...")
      ->capture_default_str();
  hs->add_flag("--hold", ho.hold,
               "stay after the report, with the registered connections (if any) open, until "
               "SIGTERM or SIGINT");
  CLI11_PARSE(app, argc, argv);

  try {
    auto target = Address::parse(intermediate);
    if (!target) throw std::runtime_error("--intermediate: not an IP:port: " + intermediate);
    auto identity = std::make_shared<quic::TlsIdentity>(tls, Role::Agent);
    auto cfg = client_config(identity, server_name);
    if (*spoof) {
      auto set = stop_signals();
      pthread_sigmask(SIG_BLOCK, &set, nullptr);
      return run_spoof(cfg, *target, count, rate, spoof_first, one_source, linger);
    }

    if (ho.register_ && ca_key.empty()) throw std::runtime_error("--register needs --ca-key");
    if (ho.sources == 0) ho.sources = std::max<size_t>(1, (ho.concurrency + 3) / 4);
    std::vector<quic::TlsIdentityPtr> identities;
    if (ho.register_) {
      auto t = io::now();
      Minter minter(tls.ca, ca_key);
      identities.reserve(ho.total);
      for (size_t i = 0; i < ho.total; ++i)
        identities.push_back(minter.agent(ho.name_prefix + "-" + std::to_string(i)));
      std::cerr << "minted " << ho.total << " agent identities in " << seconds_since(t) << " s\n";
    }
    boost::asio::io_context io;
    Load load(io, ho, cfg, *target, std::move(identities));
    load.start();
    io.run();
    return load.all_completed() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
