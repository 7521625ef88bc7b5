// The port mapping of the daemon's one UDP socket on the local gateway (DESIGN D4: the
// "port-mapped" candidate), on the daemon's event loop: the I/O shell of portmap::PortMapping,
// which decides everything (protocol order, retransmissions, renewal, restart, deletion).
// docs/port-mapping.md.
//
// What it owns:
//   - PCP (RFC 6887): a UDP socket of its own, connected to the gateway's port 5351, on Asio.
//     Not the daemon's socket: PCP's and NAT-PMP's answers start with byte 0x00 or 0x02, the
//     range DESIGN D1 gives to STUN, and a connected socket hears only the gateway. The mapping
//     is for the daemon's port, named in the request, at this host's address toward the gateway
//     (RFC 6887 §11.1: the internal address is the request's source address).
//   - NAT-PMP (RFC 6886): libnatpmp (DESIGN D8) with its own non-blocking UDP socket, connected
//     to the gateway. libnatpmp encodes the requests and decodes the answers; the event loop
//     waits for its socket to be readable, and the retransmissions are the state machine's,
//     not libnatpmp's (each one is a fresh send). Its reader takes 16 bytes without checking
//     how many arrived, so each datagram's length is checked first (MSG_PEEK) and a short one
//     is dropped.
//   - UPnP-IGD: miniupnpc (DESIGN D8), whose calls block (SSDP discovery waits out its window;
//     then HTTP and SOAP, each bounded by miniupnpc's own 3 s socket timeouts).
//
//     *** THE ONE THREAD. *** UPnP-IGD calls run on one worker thread that this mapper owns. It
//     is started only when the state machine first asks for UPnP-IGD (never if PCP or NAT-PMP
//     answered), runs jobs one at a time in order (map, renew, delete), touches nothing but
//     miniupnpc and its own state, and hands each answer back to the event loop with
//     boost::asio::post. stop() ends it: the thread is joined once its last job is answered,
//     or in the destructor, which waits for a job still in miniupnpc (bounded by miniupnpc's
//     timeouts: 2 x the discovery window, then about 6 s per HTTP call). The event loop never
//     waits on it otherwise. Why a thread rather than SSDP and SOAP on Asio: miniupnpc is the
//     well-kept library DESIGN D8 asks for, and rewriting discovery, description parsing and
//     SOAP to drive it without blocking would be the hand-written code D8 rules out.
//
// Results go to an Observer (mapping obtained or changed, lost, failed, stopped). status() is
// the JSON the daemon puts in its status.
#pragma once

#include "net/address.hpp"
#include "portmap/port_mapping.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace ztna::io {

class PortMapper {
public:
  class Observer {
  public:
    virtual ~Observer() = default;
    // A mapping was obtained, or its external address or port changed: offer it as the
    // port-mapped candidate (it replaces any earlier one).
    virtual void on_port_mapping(const portmap::Mapping& mapping) = 0;
    // The mapping is gone (renewal refused or unanswered until it expired): withdraw the
    // candidate. A new attempt has started.
    virtual void on_port_mapping_lost(const portmap::Mapping& mapping,
                                      const std::string& reason) = 0;
    // No protocol gave a mapping this round; another round follows after a back-off.
    virtual void on_port_mapping_failed(const std::string& reason) = 0;
    // stop() is done: the mapping was deleted (deleted), or there was none, or the gateway did
    // not confirm (detail says which).
    virtual void on_port_mapper_stopped(bool deleted, const std::string& detail) = 0;
  };

  struct Options {
    // Protocols, lifetime and timers; mapping.internal_port (the daemon socket's port) is
    // required. gateway, client and random are filled in by the mapper.
    portmap::Config mapping;
    // The daemon socket's address: a specific IPv4 address binds the PCP socket to it; an
    // unspecified one (0.0.0.0, [::]) leaves the choice to the route to the gateway.
    std::optional<Address> local;
    // The PCP/NAT-PMP server (its port is ignored: 5351); default: the default route's gateway
    // from /proc/net/route.
    std::optional<Address> gateway;
    // The IGD's rootDesc.xml URL: skips SSDP discovery.
    std::string upnp_url;
    // SSDP: how long to wait for answers to each of the two search targets.
    std::chrono::milliseconds upnp_discovery{1000};
    std::string description = "ztna"; // of the UPnP-IGD mapping
  };

  // Throws std::invalid_argument for options the state machine refuses.
  PortMapper(boost::asio::io_context& io, Options options, Observer& observer);
  ~PortMapper();
  PortMapper(const PortMapper&) = delete;
  PortMapper& operator=(const PortMapper&) = delete;

  void start();
  // Deletes the mapping and ends the worker thread; Observer::on_port_mapper_stopped follows
  // within 1.75 s (PCP, NAT-PMP) or Options::mapping.stop_timeout (UPnP-IGD). Do not destroy
  // the mapper from inside an Observer call.
  void stop();

  const std::optional<portmap::Mapping>& mapping() const { return core_->mapping(); }
  portmap::PortMapping::State state() const { return core_->state(); }
  // state, protocols, gateway, internal, mapping{protocol, external, lifetime_s, expires_in_s,
  // renew_in_s}, attempt{protocol, step, purpose, transmissions}, round_failures, last_failure,
  // retry_in_s, upnp{worker, igd}, counters{...}.
  nlohmann::json status() const;

private:
  class UpnpWorker;

  void open_pcp();
  void receive_pcp();
  bool open_natpmp();
  void wait_natpmp();
  void read_natpmp();
  void close_natpmp();
  void drive();
  void arm_timer();
  void send_natpmp(const portmap::NatPmpRequest& r);
  void run_upnp(const portmap::UpnpJob& job);
  void on_upnp_answer(const portmap::UpnpAnswer& answer);
  void finished(const portmap::Stopped& s);
  std::string internal_text() const;

  boost::asio::io_context& io_;
  Options options_;
  Observer& observer_;
  std::optional<Address> gateway_; // with port 5351
  Address client_;                 // our address toward it
  std::unique_ptr<portmap::PortMapping> core_;
  boost::asio::ip::udp::socket pcp_socket_;
  std::vector<uint8_t> pcp_buffer_;
  struct NatPmp;
  std::unique_ptr<NatPmp> natpmp_;
  boost::asio::posix::stream_descriptor natpmp_wait_;
  std::unique_ptr<UpnpWorker> worker_;
  boost::asio::steady_timer timer_;
  portmap::Timestamp started_at_ = 0;
  bool driving_ = false;
  uint64_t natpmp_dropped_ = 0; // datagrams too short for libnatpmp's reader
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ztna::io
