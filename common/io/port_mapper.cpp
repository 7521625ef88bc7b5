#include "io/port_mapper.hpp"

#include "io/clock.hpp"
#include "io/random.hpp"
#include "portmap/gateway.hpp"

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <natpmp.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace ztna::io {

using portmap::Protocol;

namespace {

constexpr uint64_t kMsNs = 1'000'000;

double seconds_until(portmap::Timestamp t, portmap::Timestamp now) {
  if (t == portmap::kNever) return -1;
  return t > now ? static_cast<double>(t - now) / 1e9 : 0.0;
}

std::string upnp_error(int code) {
  const char* text = strupnperror(code);
  return std::to_string(code) + (text ? std::string(" ") + text : std::string());
}

} // namespace

// ---------------------------------------------------------------------------------------------
// The UPnP-IGD worker thread (see port_mapper.hpp). Only this thread calls miniupnpc and
// touches urls_, data_, lan_ and mapped_port_.

class PortMapper::UpnpWorker {
public:
  struct Settings {
    std::string url;
    int discovery_ms = 1000;
    std::string description;
  };

  UpnpWorker(Settings settings, std::function<void(portmap::UpnpAnswer)> deliver)
      : settings_(std::move(settings)), deliver_(std::move(deliver)) {
    thread_ = std::thread([this] { run(); });
  }
  ~UpnpWorker() {
    finish();
    join();
  }

  void submit(const portmap::UpnpJob& job) {
    std::lock_guard lock(mu_);
    jobs_.push_back(job);
    cv_.notify_one();
  }
  // No more jobs: the thread ends once the queue is done.
  void finish() {
    std::lock_guard lock(mu_);
    quit_ = true;
    cv_.notify_one();
  }
  bool idle() const {
    std::lock_guard lock(mu_);
    return jobs_.empty() && !busy_;
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  bool joined() const { return !thread_.joinable(); }
  std::string igd() const {
    std::lock_guard lock(mu_);
    return igd_;
  }

private:
  void run() {
    for (;;) {
      portmap::UpnpJob job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return quit_ || !jobs_.empty(); });
        if (jobs_.empty()) break;
        job = jobs_.front();
        jobs_.pop_front();
        busy_ = true;
      }
      auto answer = job.remove ? remove(job) : map(job);
      {
        std::lock_guard lock(mu_);
        busy_ = false;
      }
      deliver_(std::move(answer));
    }
    if (have_igd_) FreeUPNPUrls(&urls_);
  }

  static portmap::UpnpAnswer fail(const portmap::UpnpJob& job, std::string error) {
    portmap::UpnpAnswer a;
    a.id = job.id;
    a.error = std::move(error);
    return a;
  }

  // Finds the IGD once (SSDP, or the configured URL) and keeps it; an HTTP failure forgets it.
  std::string find_igd() {
    if (have_igd_) return {};
    std::memset(&urls_, 0, sizeof urls_);
    std::memset(&data_, 0, sizeof data_);
    std::memset(lan_, 0, sizeof lan_);
    if (!settings_.url.empty()) {
      if (UPNP_GetIGDFromUrl(settings_.url.c_str(), &urls_, &data_, lan_, sizeof lan_) != 1) {
        FreeUPNPUrls(&urls_);
        return "no UPnP-IGD at " + settings_.url;
      }
    } else {
      // Two search targets, one discovery window each when nothing answers: the IGD itself,
      // and every root device for gateways that answer only that.
      const char* targets[] = {"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                               "upnp:rootdevice", nullptr};
      int error = 0;
      UPNPDev* devices = upnpDiscoverDevices(targets, settings_.discovery_ms, nullptr, nullptr,
                                             UPNP_LOCAL_PORT_ANY, 0, 2, &error, 0);
      if (!devices)
        return "no UPnP device answered SSDP discovery within " +
               std::to_string(2 * settings_.discovery_ms) + " ms" +
               (error != UPNPDISCOVER_SUCCESS ? " (error " + std::to_string(error) + ")" : "");
      int status = UPNP_GetValidIGD(devices, &urls_, &data_, lan_, sizeof lan_);
      freeUPNPDevlist(devices);
      if (status == 0) return "SSDP found UPnP devices, but no IGD among them";
      if (status == 3) {
        std::string where = urls_.rootdescURL ? urls_.rootdescURL : "?";
        FreeUPNPUrls(&urls_);
        return "SSDP found a UPnP device that is no IGD (" + where + ")";
      }
      // 2 is "an IGD, not connected": miniupnpc says so when the external address is private
      // or reserved (behind another NAT, or a lab's TEST-NET), and such a gateway still maps.
    }
    if (!urls_.controlURL || !*urls_.controlURL) {
      FreeUPNPUrls(&urls_);
      return "the IGD has no WAN connection service";
    }
    have_igd_ = true;
    std::lock_guard lock(mu_);
    igd_ = urls_.rootdescURL ? urls_.rootdescURL : settings_.url;
    return {};
  }

  void forget_igd() {
    if (!have_igd_) return;
    FreeUPNPUrls(&urls_);
    have_igd_ = false;
    std::lock_guard lock(mu_);
    igd_.clear();
  }

  int add(uint16_t external, const std::string& internal, const std::string& lease) {
    auto ext = std::to_string(external);
    return UPNP_AddPortMapping(urls_.controlURL, data_.first.servicetype, ext.c_str(),
                               internal.c_str(), lan_, settings_.description.c_str(), "UDP",
                               nullptr, lease.c_str());
  }

  portmap::UpnpAnswer map(const portmap::UpnpJob& job) {
    if (auto e = find_igd(); !e.empty()) return fail(job, e);
    char ext_ip[40] = {};
    int r = UPNP_GetExternalIPAddress(urls_.controlURL, data_.first.servicetype, ext_ip);
    if (r != UPNPCOMMAND_SUCCESS) {
      if (r == UPNPCOMMAND_HTTP_ERROR) forget_igd();
      return fail(job, "GetExternalIPAddress failed: " + upnp_error(r));
    }
    auto ip = Address::parse(std::string(ext_ip) + ":0");
    if (!ip || ip->is_v6() || ip->ip_string() == "0.0.0.0")
      return fail(job, "the IGD has no external IPv4 address ('" + std::string(ext_ip) + "')");
    std::string internal = std::to_string(job.internal_port);
    std::string lease = std::to_string(job.lifetime);
    uint16_t external = job.external_port ? job.external_port : job.internal_port;
    r = add(external, internal, lease);
    if (r == 725) { // OnlyPermanentLeasesSupported (IGDv1): the deletion at stop matters more
      lease = "0";
      r = add(external, internal, lease);
    }
    if (r == 718) { // ConflictInMappingEntry: the port is someone else's
      // AddAnyPortMapping (IGDv2) lets the gateway choose; IGDv1 has no such action, so a few
      // random ports then.
      char reserved[8] = {};
      auto ext = std::to_string(external);
      r = UPNP_AddAnyPortMapping(urls_.controlURL, data_.first.servicetype, ext.c_str(),
                                 internal.c_str(), lan_, settings_.description.c_str(), "UDP",
                                 nullptr, lease.c_str(), reserved);
      unsigned port = 0;
      if (r == UPNPCOMMAND_SUCCESS && std::sscanf(reserved, "%u", &port) == 1 && port > 0 &&
          port < 65536) {
        external = static_cast<uint16_t>(port);
      } else {
        for (int i = 0; i < 3; ++i) {
          uint16_t random = 0;
          random_fill({reinterpret_cast<uint8_t*>(&random), sizeof random});
          external = static_cast<uint16_t>(1024 + random % (65536 - 1024));
          r = add(external, internal, lease);
          if (r != 718) break;
        }
      }
    }
    if (r != UPNPCOMMAND_SUCCESS) {
      if (r == UPNPCOMMAND_HTTP_ERROR) forget_igd();
      return fail(job, "AddPortMapping " + std::to_string(external) + "/UDP -> " + lan_ + ":" +
                           internal + " failed: " + upnp_error(r));
    }
    mapped_port_ = external;
    portmap::UpnpAnswer a;
    a.id = job.id;
    a.ok = true;
    a.external = *ip;
    a.external.set_port(external);
    a.lifetime = static_cast<uint32_t>(std::stoul(lease));
    return a;
  }

  portmap::UpnpAnswer remove(const portmap::UpnpJob& job) {
    portmap::UpnpAnswer a;
    a.id = job.id;
    if (mapped_port_ == 0 || !have_igd_) {
      a.ok = true; // nothing of ours on the gateway
      return a;
    }
    auto ext = std::to_string(mapped_port_);
    int r = UPNP_DeletePortMapping(urls_.controlURL, data_.first.servicetype, ext.c_str(), "UDP",
                                   nullptr);
    if (r == UPNPCOMMAND_SUCCESS || r == 714) { // 714: NoSuchEntryInArray, gone already
      mapped_port_ = 0;
      a.ok = true;
      return a;
    }
    return fail(job, "DeletePortMapping " + ext + "/UDP failed: " + upnp_error(r));
  }

  Settings settings_;
  std::function<void(portmap::UpnpAnswer)> deliver_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<portmap::UpnpJob> jobs_;
  bool quit_ = false;
  bool busy_ = false;
  std::string igd_; // for status, under mu_
  // The worker thread's own.
  UPNPUrls urls_{};
  IGDdatas data_{};
  char lan_[64] = {};
  bool have_igd_ = false;
  uint16_t mapped_port_ = 0;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// libnatpmp's state.

struct PortMapper::NatPmp {
  natpmp_t p{};
  bool open = false;
  bool asked_address = false; // what the request in flight was
};

PortMapper::PortMapper(boost::asio::io_context& io, Options options, Observer& observer)
    : io_(io), options_(std::move(options)), observer_(observer), pcp_socket_(io),
      pcp_buffer_(portmap::pcp::kMaxMessage + 4), natpmp_(std::make_unique<NatPmp>()),
      natpmp_wait_(io), timer_(io) {
  // The gateway: given, or the default route's (in this network namespace).
  if (options_.gateway) {
    gateway_ = *options_.gateway;
  } else {
    std::ifstream f("/proc/net/route");
    std::stringstream text;
    text << f.rdbuf();
    if (auto route = portmap::default_route(text.str()))
      gateway_ = Address::ipv4(route->gateway, 0);
  }
  if (gateway_) {
    gateway_->set_port(portmap::pcp::kServerPort);
    if (gateway_->is_v6()) {
      spdlog::warn("port mapping: gateway {} is IPv6; PCP and NAT-PMP need an IPv4 gateway",
                   gateway_->to_string());
      gateway_.reset();
    } else {
      open_pcp();
    }
  }
  auto config = options_.mapping;
  config.gateway = gateway_;
  config.client = client_;
  config.random = [](std::span<uint8_t> out) { random_fill(out); };
  core_ = std::make_unique<portmap::PortMapping>(std::move(config));
}

PortMapper::~PortMapper() {
  alive_.reset();  // answers still queued on the event loop find nobody
  worker_.reset(); // joins; see the file comment of port_mapper.hpp for the bound
  close_natpmp();
}

void PortMapper::open_pcp() {
  namespace ip = boost::asio::ip;
  boost::system::error_code ec;
  pcp_socket_.open(ip::udp::v4(), ec);
  ip::udp::endpoint bind(ip::address_v4::any(), 0);
  if (!ec && options_.local && !options_.local->is_v6() && options_.local->ip_string() != "0.0.0.0")
    bind.address(ip::make_address_v4(options_.local->ip_string()));
  if (!ec) pcp_socket_.bind(bind, ec);
  if (!ec)
    pcp_socket_.connect({ip::make_address_v4(gateway_->ip_string()), portmap::pcp::kServerPort},
                        ec);
  if (ec) {
    spdlog::warn("port mapping: no socket toward {}: {}", gateway_->to_string(), ec.message());
    pcp_socket_.close(ec);
    gateway_.reset();
    return;
  }
  auto local = pcp_socket_.local_endpoint(ec);
  client_ = Address::ipv4(local.address().to_v4().to_uint(), 0);
}

void PortMapper::start() {
  started_at_ = now();
  if (!gateway_) spdlog::info("port mapping: no IPv4 default gateway; PCP and NAT-PMP are skipped");
  spdlog::debug(
      "port mapping: UDP port {} via {}, gateway {}", options_.mapping.internal_port,
      [&] {
        std::string s;
        for (auto p : core_->config().protocols)
          s += (s.empty() ? "" : ", ") + std::string(portmap::display_name(p));
        return s;
      }(),
      gateway_ ? gateway_->ip_string() : std::string("none"));
  if (pcp_socket_.is_open()) receive_pcp();
  core_->start(now());
  drive();
}

void PortMapper::stop() {
  core_->stop(now());
  drive();
}

// ---------------------------------------------------------------------------------------------
// Carrying out the state machine's actions.

void PortMapper::drive() {
  if (driving_) return; // the loop below picks up what a nested call queued
  driving_ = true;
  for (auto actions = core_->take_actions(); !actions.empty(); actions = core_->take_actions()) {
    for (auto& action : actions) {
      if (auto* a = std::get_if<portmap::SendPcp>(&action)) {
        boost::system::error_code ec;
        pcp_socket_.send(boost::asio::buffer(a->datagram), 0, ec);
        if (ec == boost::asio::error::connection_refused)
          core_->on_unreachable(now(), Protocol::Pcp);
        else if (ec)
          spdlog::debug("port mapping: PCP send to {}: {}", gateway_->to_string(), ec.message());
      } else if (auto* a = std::get_if<portmap::SendNatPmp>(&action)) {
        send_natpmp(a->request);
      } else if (auto* a = std::get_if<portmap::RunUpnp>(&action)) {
        run_upnp(a->job);
      } else if (auto* a = std::get_if<portmap::Obtained>(&action)) {
        const auto& m = a->mapping;
        if (a->changed)
          spdlog::info("port mapping: now {} -> {} via {} (lifetime {} s): the external address "
                       "or port changed",
                       m.external.to_string(), internal_text(), portmap::display_name(m.protocol),
                       m.lifetime_s);
        else
          spdlog::info("port mapping: {} -> {} via {} (lifetime {} s), {:.0f} ms after start",
                       m.external.to_string(), internal_text(), portmap::display_name(m.protocol),
                       m.lifetime_s, static_cast<double>(now() - started_at_) / 1e6);
        observer_.on_port_mapping(m);
      } else if (auto* a = std::get_if<portmap::Renewed>(&action)) {
        spdlog::debug("port mapping: renewed {} via {} for {} s", a->mapping.external.to_string(),
                      portmap::display_name(a->mapping.protocol), a->mapping.lifetime_s);
      } else if (auto* a = std::get_if<portmap::Lost>(&action)) {
        spdlog::warn("port mapping: lost {} ({}): {}; mapping again",
                     a->mapping.external.to_string(), portmap::display_name(a->mapping.protocol),
                     a->reason);
        observer_.on_port_mapping_lost(a->mapping, a->reason);
      } else if (auto* a = std::get_if<portmap::Failed>(&action)) {
        spdlog::warn("port mapping: {}; trying again in {:.0f} s", a->reason,
                     seconds_until(a->retry_at, now()));
        observer_.on_port_mapping_failed(a->reason);
      } else if (auto* a = std::get_if<portmap::GatewayRestarted>(&action)) {
        spdlog::info("port mapping: the gateway restarted ({} epoch {} s, was {} s): mapping again",
                     portmap::display_name(a->protocol), a->epoch_now, a->epoch_before);
      } else if (auto* a = std::get_if<portmap::Stopped>(&action)) {
        finished(*a);
      }
    }
  }
  driving_ = false;
  arm_timer();
}

void PortMapper::finished(const portmap::Stopped& s) {
  if (s.mapping) {
    if (s.deleted)
      spdlog::info("port mapping: deleted {} ({})", s.mapping->external.to_string(),
                   portmap::display_name(s.mapping->protocol));
    else
      spdlog::warn("port mapping: could not delete {} ({}): {}; the gateway drops it within {} s",
                   s.mapping->external.to_string(), portmap::display_name(s.mapping->protocol),
                   s.detail, s.mapping->lifetime_s);
  } else {
    spdlog::debug("port mapping: stopped ({})", s.detail);
  }
  // The worker has answered its last job unless the deletion timed out; then the destructor
  // waits for it instead of the event loop here.
  if (worker_) {
    worker_->finish();
    if (worker_->idle()) worker_->join();
  }
  boost::system::error_code ec;
  pcp_socket_.close(ec);
  close_natpmp();
  observer_.on_port_mapper_stopped(s.deleted, s.detail);
}

void PortMapper::arm_timer() {
  auto t = core_->next_timeout();
  if (t == portmap::kNever || core_->state() == portmap::PortMapping::State::Stopped) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(t)));
  timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
    if (ec || !alive.lock()) return;
    core_->handle_timeout(now());
    drive();
  });
}

// ---------------------------------------------------------------------------------------------
// PCP

void PortMapper::receive_pcp() {
  pcp_socket_.async_receive(
      boost::asio::buffer(pcp_buffer_),
      [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec, size_t n) {
        if (!alive.lock() || ec == boost::asio::error::operation_aborted || !pcp_socket_.is_open())
          return;
        if (ec == boost::asio::error::connection_refused) {
          core_->on_unreachable(now(), Protocol::Pcp); // ICMP port unreachable from 5351
        } else if (ec) {
          spdlog::debug("port mapping: PCP socket: {}", ec.message());
          return; // nothing more from this socket; the retransmissions time out
        } else {
          core_->on_pcp(now(), std::span<const uint8_t>(pcp_buffer_.data(), n));
        }
        drive();
        receive_pcp();
      });
}

// ---------------------------------------------------------------------------------------------
// NAT-PMP through libnatpmp

bool PortMapper::open_natpmp() {
  if (natpmp_->open) return true;
  if (!gateway_) return false;
  in_addr gw{};
  inet_pton(AF_INET, gateway_->ip_string().c_str(), &gw);
  // forcegw: the gateway we use for PCP; libnatpmp's own lookup would read the routes again.
  int r = initnatpmp(&natpmp_->p, 1, gw.s_addr);
  if (r < 0) {
    spdlog::warn("port mapping: libnatpmp: initnatpmp failed ({})", r);
    if (natpmp_->p.s >= 0) closenatpmp(&natpmp_->p);
    return false;
  }
  natpmp_->open = true;
  // The event loop waits on a duplicate of libnatpmp's descriptor, so that each side closes
  // its own.
  int fd = ::dup(natpmp_->p.s);
  boost::system::error_code ec;
  if (fd >= 0) natpmp_wait_.assign(fd, ec);
  if (fd < 0 || ec) {
    spdlog::warn("port mapping: cannot watch libnatpmp's socket: {}",
                 fd < 0 ? std::string(strerror(errno)) : ec.message());
    if (fd >= 0 && ec) ::close(fd);
    closenatpmp(&natpmp_->p);
    natpmp_->open = false;
    return false;
  }
  wait_natpmp();
  return true;
}

void PortMapper::close_natpmp() {
  boost::system::error_code ec;
  if (natpmp_wait_.is_open()) natpmp_wait_.close(ec);
  if (natpmp_ && natpmp_->open) {
    closenatpmp(&natpmp_->p);
    natpmp_->open = false;
  }
}

void PortMapper::send_natpmp(const portmap::NatPmpRequest& req) {
  if (!open_natpmp()) {
    core_->on_unreachable(now(), Protocol::NatPmp);
    return;
  }
  natpmp_->asked_address = req.public_address;
  int r = req.public_address
              ? sendpublicaddressrequest(&natpmp_->p)
              : sendnewportmappingrequest(&natpmp_->p, NATPMP_PROTOCOL_UDP, req.internal_port,
                                          req.external_port, req.lifetime);
  // A connected UDP socket reports an earlier ICMP port unreachable on the next send.
  if (r == NATPMP_ERR_SENDERR && errno == ECONNREFUSED)
    core_->on_unreachable(now(), Protocol::NatPmp);
  else if (r < 0)
    spdlog::debug("port mapping: NAT-PMP send to {}: libnatpmp error {}", gateway_->to_string(), r);
}

void PortMapper::wait_natpmp() {
  natpmp_wait_.async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        if (ec || !alive.lock() || !natpmp_->open) return;
        read_natpmp();
        drive();
        if (natpmp_->open) wait_natpmp();
      });
}

void PortMapper::read_natpmp() {
  int fd = natpmp_->p.s;
  for (int i = 0; i < 16 && natpmp_->open; ++i) { // what is queued, within bounds
    uint8_t head[16];
    ssize_t n = ::recv(fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == ECONNREFUSED) { // ICMP port unreachable; reading it cleared it
        core_->on_unreachable(now(), Protocol::NatPmp);
        continue;
      }
      return; // EAGAIN: nothing more
    }
    // libnatpmp reads the result and the epoch (8 bytes), and for its answers 12 (public
    // address) or 16 (mapping) bytes, without checking how many arrived.
    size_t need = 8;
    if (n >= 2 && head[0] == 0 && head[1] == 128) need = 12;
    if (n >= 2 && head[0] == 0 && (head[1] == 129 || head[1] == 130)) need = 16;
    if (static_cast<size_t>(n) < need || !natpmp_->p.has_pending_request) {
      ::recv(fd, head, sizeof head, MSG_DONTWAIT); // drop it
      if (static_cast<size_t>(n) < need) ++natpmp_dropped_;
      continue;
    }
    natpmpresp_t resp{};
    int r = readnatpmpresponseorretry(&natpmp_->p, &resp);
    portmap::NatPmpAnswer a;
    a.public_address = natpmp_->asked_address;
    a.epoch = resp.epoch;
    switch (r) {
    case 0:
      if (resp.type == NATPMP_RESPTYPE_TCPPORTMAPPING) continue;
      a.public_address = resp.type == NATPMP_RESPTYPE_PUBLICADDRESS;
      if (a.public_address) {
        a.public_ip = ntohl(resp.pnu.publicaddress.addr.s_addr);
      } else {
        a.internal_port = resp.pnu.newportmapping.privateport;
        a.external_port = resp.pnu.newportmapping.mappedpublicport;
        a.lifetime = resp.pnu.newportmapping.lifetime;
      }
      break;
    case NATPMP_TRYAGAIN:
      continue; // an answer to an earlier request, consumed
    case NATPMP_ERR_NOGATEWAYSUPPORT:
      core_->on_unreachable(now(), Protocol::NatPmp);
      continue;
    case NATPMP_ERR_UNSUPPORTEDVERSION:
      a.result = 1;
      break;
    case NATPMP_ERR_NOTAUTHORIZED:
      a.result = 2;
      break;
    case NATPMP_ERR_NETWORKFAILURE:
      a.result = 3;
      break;
    case NATPMP_ERR_OUTOFRESOURCES:
      a.result = 4;
      break;
    case NATPMP_ERR_UNSUPPORTEDOPCODE:
      a.result = 5;
      break;
    case NATPMP_ERR_UNDEFINEDERROR:
      a.result = resp.resultcode ? resp.resultcode : 6;
      break;
    default:
      spdlog::debug("port mapping: libnatpmp read error {}", r);
      continue;
    }
    core_->on_natpmp(now(), a);
  }
}

// ---------------------------------------------------------------------------------------------
// UPnP-IGD on the worker thread

void PortMapper::run_upnp(const portmap::UpnpJob& job) {
  if (!worker_) {
    spdlog::debug("port mapping: starting the UPnP-IGD worker thread");
    UpnpWorker::Settings s{options_.upnp_url, static_cast<int>(options_.upnp_discovery.count()),
                           options_.description};
    worker_ = std::make_unique<UpnpWorker>(
        std::move(s),
        [this, &io = io_, alive = std::weak_ptr<bool>(alive_)](portmap::UpnpAnswer a) {
          // On the worker thread: hand the answer to the event loop.
          boost::asio::post(io, [this, alive, a = std::move(a)] {
            if (alive.lock()) on_upnp_answer(a);
          });
        });
  }
  worker_->submit(job);
}

void PortMapper::on_upnp_answer(const portmap::UpnpAnswer& answer) {
  if (!answer.ok) spdlog::debug("port mapping: UPnP-IGD job {}: {}", answer.id, answer.error);
  core_->on_upnp(now(), answer);
  drive();
}

// ---------------------------------------------------------------------------------------------
// Status

std::string PortMapper::internal_text() const {
  if (client_.empty()) return "port " + std::to_string(options_.mapping.internal_port);
  return client_.ip_string() + ":" + std::to_string(options_.mapping.internal_port);
}

nlohmann::json PortMapper::status() const {
  auto t = now();
  nlohmann::json j;
  j["state"] = portmap::to_string(core_->state());
  auto& protocols = j["protocols"] = nlohmann::json::array();
  for (auto p : core_->config().protocols)
    protocols.push_back(portmap::to_string(p));
  j["gateway"] = gateway_ ? nlohmann::json(gateway_->ip_string()) : nlohmann::json(nullptr);
  j["internal"] = internal_text();
  if (const auto& m = core_->mapping()) {
    nlohmann::json mj{{"protocol", portmap::to_string(m->protocol)},
                      {"external", m->external.to_string()},
                      {"lifetime_s", m->lifetime_s},
                      {"age_s", static_cast<double>(t - m->obtained_at) / 1e9}};
    if (m->expires_at != portmap::kNever) mj["expires_in_s"] = seconds_until(m->expires_at, t);
    if (core_->renew_at() != portmap::kNever)
      mj["renew_in_s"] = seconds_until(core_->renew_at(), t);
    j["mapping"] = mj;
  }
  if (const auto& x = core_->exchange())
    j["attempt"] = {{"protocol", portmap::to_string(x->protocol)},
                    {"step", portmap::to_string(x->step)},
                    {"purpose", portmap::to_string(x->purpose)},
                    {"transmissions", x->transmissions},
                    {"elapsed_ms", static_cast<double>(t - x->started_at) / kMsNs}};
  auto& failures = j["round_failures"] = nlohmann::json::object();
  for (const auto& [p, why] : core_->round_failures())
    failures[portmap::to_string(p)] = why;
  if (!core_->last_failure().empty()) j["last_failure"] = core_->last_failure();
  if (core_->retry_at() != portmap::kNever) j["retry_in_s"] = seconds_until(core_->retry_at(), t);
  std::string worker = "not started";
  if (worker_) worker = worker_->joined() ? "finished" : worker_->idle() ? "idle" : "busy";
  j["upnp"] = {{"worker", worker}, {"igd", worker_ ? worker_->igd() : std::string()}};
  const auto& c = core_->counters();
  j["counters"] = {{"requests", c.requests},
                   {"responses", c.responses},
                   {"malformed", c.malformed + natpmp_dropped_},
                   {"ignored", c.ignored},
                   {"obtained", c.obtained},
                   {"renewals", c.renewals},
                   {"renewals_missed", c.renewals_missed},
                   {"changes", c.changes},
                   {"losses", c.losses},
                   {"gateway_restarts", c.gateway_restarts},
                   {"rounds_failed", c.rounds_failed},
                   {"deletions", c.deletions}};
  return j;
}

} // namespace ztna::io
