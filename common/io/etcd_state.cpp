#include "io/etcd_state.hpp"

#include "io/clock.hpp"

#include <spdlog/spdlog.h>

namespace ztna::io {

namespace {
store::Time steady_now() {
  return std::chrono::steady_clock::now();
}
} // namespace

EtcdState::EtcdState(boost::asio::io_context& io, std::vector<EtcdClient::Endpoint> endpoints,
                     store::ClusterConfig config, Listener& listener)
    : endpoints_(endpoints), core_(std::move(config)),
      client_(io, std::move(endpoints), std::chrono::milliseconds(1000)), listener_(listener),
      timer_(io) {}

EtcdState::~EtcdState() {
  stop();
}

void EtcdState::start() {
  spdlog::info("shared state: etcd at {} (prefix '{}', lease TTL {} ms)", client_.endpoint(),
               core_.config().prefix, core_.config().lease_ttl.count());
  core_.start(steady_now());
  drive();
}

void EtcdState::stop() {
  if (stopped_) return;
  stopped_ = true;
  *alive_ = false;
  timer_.cancel();
  client_.stop();
  revoke_lease();
}

void EtcdState::revoke_lease() {
  const int64_t lease = core_.lease();
  if (lease == 0) return;
  // The daemon's loop stops right after this: a loop of our own, for a bounded time.
  boost::asio::io_context io;
  EtcdClient client(io, endpoints_, kRevokeWait / static_cast<int>(endpoints_.size()));
  std::string outcome = "no answer within " + std::to_string(kRevokeWait.count()) + " ms";
  client.call(
      "/v3/lease/revoke", store::encode_lease_revoke(lease),
      [&](std::string_view body, const std::string& error) {
        std::string perr;
        outcome = !error.empty() ? error : !store::parse_header(body, perr) ? perr : std::string();
      });
  io.run_for(kRevokeWait);
  if (outcome.empty())
    spdlog::info("shared state: lease revoked; this intermediate's records left etcd");
  else
    spdlog::warn("shared state: could not revoke the lease ({}); its records leave etcd within "
                 "{} ms",
                 outcome, core_.config().lease_ttl.count());
}

void EtcdState::peer_homed(Role role, const std::string& name, const std::string& address,
                           const std::vector<std::string>& services) {
  core_.set_home(role, name, address, services, steady_now());
  drive();
}

void EtcdState::peer_left(Role role, const std::string& name) {
  core_.clear_home(role, name, steady_now());
  drive();
}

void EtcdState::publish_policy(std::string policy, std::string crl) {
  core_.publish_policy(std::move(policy), std::move(crl), unix_ms(), steady_now());
  drive();
}

// Carries out what the core asks for until it asks for nothing more: events first (a listener
// may publish), then calls, then the watch, then the timer.
void EtcdState::drive() {
  if (stopped_ || driving_) return;
  driving_ = true;
  for (bool more = true; more;) {
    more = false;
    for (const auto& e : core_.take_events()) {
      more = true;
      on_event(e);
    }
    for (auto& r : core_.take_requests()) {
      more = true;
      client_.call(
          std::move(r.path), std::move(r.body),
          [this, id = r.id, alive = alive_](std::string_view body, const std::string& error) {
            if (!*alive) return;
            core_.on_response(id, body, error, steady_now());
            // A call failed over to another endpoint: the watch's may be dead without
            // a word (a machine gone), so it follows the calls.
            if (core_.watching() && client_.endpoint() != watch_endpoint_)
              core_.on_watch_end("etcd endpoint changed", steady_now());
            drive();
          });
    }
    if (auto body = core_.take_watch(); !body.empty()) {
      more = true;
      watch_endpoint_ = client_.endpoint();
      client_.watch(
          std::move(body),
          [this, alive = alive_](std::span<const uint8_t> bytes) {
            if (!*alive) return;
            core_.on_watch_bytes(bytes, steady_now());
            drive();
          },
          [this, alive = alive_](const std::string& why) {
            if (!*alive) return;
            spdlog::debug("shared state: watch ended: {}", why);
            core_.on_watch_end(why, steady_now());
            drive();
          });
    }
  }
  driving_ = false;
  timer_.cancel();
  if (auto at = core_.next_timeout()) {
    timer_.expires_at(*at);
    timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
      if (ec || !*alive) return;
      core_.handle_timeout(steady_now());
      drive();
    });
  }
}

void EtcdState::on_event(const store::ClusterState::Event& e) {
  using Kind = store::ClusterState::Event::Kind;
  switch (e.kind) {
  case Kind::Up:
    if (down_since_unix_ms_ != 0)
      spdlog::info("shared state: etcd reachable again at {} after {} ms; writing {} home(s)",
                   client_.endpoint(), unix_ms() - down_since_unix_ms_, core_.homes());
    else
      spdlog::info("shared state: etcd reachable at {}", client_.endpoint());
    down_since_unix_ms_ = 0;
    break;
  case Kind::Down:
    outages_++;
    down_since_unix_ms_ = unix_ms();
    spdlog::error("shared state: etcd unreachable ({}); carrying on with policy revision {}: "
                  "sessions continue and peers still register here; homes are written when "
                  "etcd is back, and policy changes from other intermediates wait for it",
                  e.detail, core_.policy_revision());
    break;
  case Kind::Policy:
    listener_.on_shared_policy(e.policy);
    break;
  case Kind::PolicyAbsent:
    listener_.on_shared_policy_absent();
    break;
  case Kind::Invalid:
    spdlog::error("shared state: {}", e.detail);
    break;
  }
}

nlohmann::json EtcdState::status() const {
  const auto& s = core_.stats();
  nlohmann::json members = nlohmann::json::object();
  for (const auto& [name, address] : core_.members())
    members[name] = address;
  return {{"mode", "etcd"},
          {"etcd", core_.up() ? "up" : "unreachable"},
          {"endpoint", client_.endpoint()},
          {"down_since_unix_ms", down_since_unix_ms_},
          {"outages", outages_},
          {"lease", core_.lease()},
          {"watching", core_.watching()},
          {"policy_revision", core_.policy_revision()},
          {"homes", core_.homes()},
          {"members", members},
          {"counters",
           {{"puts", s.puts},
            {"deletes", s.deletes},
            {"writes", s.puts + s.deletes},
            {"ranges", s.ranges},
            {"lease_grants", s.lease_grants},
            {"keepalives", s.keepalives},
            {"failures", s.failures},
            {"leases_lost", s.leases_lost},
            {"watch_restarts", s.watch_restarts},
            {"policy_updates", s.policy_updates},
            {"records_malformed", s.records_malformed},
            {"records_refused", s.records_refused}}}};
}

} // namespace ztna::io
