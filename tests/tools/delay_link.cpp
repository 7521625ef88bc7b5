// ztna-delay-link: forwards Ethernet frames between two interfaces in both directions, holding
// each frame back by a fixed one-way delay and dropping frames at random. The kernel the lab runs
// on has no netem; the NAT lab (tests/natlab/natlab.sh, natlab_router --delay/--loss) runs this in
// a namespace of its own between a router's WAN and its upstream segment.
//
//   ztna-delay-link --if IFACE --if IFACE [--delay MS] [--loss PCT] [--seed N]
//                   [--queue-frames N] [--queue-bytes N] [--ready FILE]
//
//   --delay MS        one-way delay, the same in both directions (default 0; fractions allowed)
//   --loss PCT        each frame is dropped with this probability, in percent (default 0)
//   --seed N          seed of the loss generator (default: random), for repeatable runs
//   --queue-frames N, --queue-bytes N
//                     bound of each direction's queue (default 4096 frames, 16 MiB); a frame
//                     that does not fit is dropped and counted
//   --ready FILE      written (atomically) once both interfaces are open
//
// On SIGTERM or SIGINT it prints one summary line on stderr (per direction: frames forwarded,
// lost at random, dropped for a full queue, send errors) and exits 0.
//
// Offloads. A veth hands over GSO super-frames (up to 64 KiB, larger than the MTU) and frames
// whose checksum is left to the hardware. The sockets carry a virtio-net header
// (PACKET_VNET_HDR) that describes both; writing it back on the other interface lets the kernel
// keep such frames as they were (and segment them where needed). Without it a super-frame could
// not be sent and a frame with a partial checksum would arrive corrupt. Frames this program sends
// are not read back on that interface (PACKET_IGNORE_OUTGOING).
//
// Each direction is a FIFO: with one delay for every frame, arrival order is also due order. The
// loop sleeps in ppoll until a socket is readable, a frame is due or a signal arrives.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// struct virtio_net_hdr (linux/virtio_net.h, which does not compile as C++): flags, gso_type,
// hdr_len, gso_size, csum_start, csum_offset. Frames carry it through untouched.
constexpr size_t kVnetHdr = 10;

volatile sig_atomic_t g_stop = 0;

void on_signal(int) {
  g_stop = 1;
}

struct Options {
  std::vector<std::string> ifaces;
  double delay_ms = 0;
  double loss_pct = 0;
  uint64_t seed = 0;
  bool seeded = false;
  size_t queue_frames = 4096;
  size_t queue_bytes = size_t{16} << 20;
  std::string ready;
};

struct Frame {
  Clock::time_point due;
  std::vector<uint8_t> data; // virtio-net header, then the Ethernet frame
};

struct Direction {
  int in = -1;  // read from
  int out = -1; // write to
  std::string name;
  std::deque<Frame> queue;
  size_t queued_bytes = 0;
  uint64_t forwarded = 0;
  uint64_t gso = 0; // of which GSO super-frames (several packets on the wire)
  uint64_t lost = 0;
  uint64_t queue_full = 0;
  uint64_t send_errors = 0;
  uint64_t recv_errors = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "ztna-delay-link: %s\n"
               "usage: ztna-delay-link --if IFACE --if IFACE [--delay MS] [--loss PCT] [--seed N]\n"
               "                       [--queue-frames N] [--queue-bytes N] [--ready FILE]\n",
               why.c_str());
  std::exit(2);
}

double parse_number(const std::string& opt, const std::string& text, double lo, double hi) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(v) || v < lo || v > hi)
    usage(opt + ": bad value '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    if (i + 1 >= argc) usage(opt + " needs a value");
    std::string val = argv[++i];
    if (opt == "--if") {
      o.ifaces.push_back(val);
    } else if (opt == "--delay") {
      o.delay_ms = parse_number(opt, val, 0, 60000);
    } else if (opt == "--loss") {
      o.loss_pct = parse_number(opt, val, 0, 100);
    } else if (opt == "--seed") {
      o.seed = static_cast<uint64_t>(parse_number(opt, val, 0, 9007199254740991.0));
      o.seeded = true;
    } else if (opt == "--queue-frames") {
      o.queue_frames = static_cast<size_t>(parse_number(opt, val, 1, 1e7));
    } else if (opt == "--queue-bytes") {
      o.queue_bytes = static_cast<size_t>(parse_number(opt, val, 65536, 1e10));
    } else if (opt == "--ready") {
      o.ready = val;
    } else {
      usage("unknown option " + opt);
    }
  }
  if (o.ifaces.size() != 2) usage("exactly two --if are needed");
  if (o.ifaces[0] == o.ifaces[1]) usage("the two interfaces must differ");
  return o;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "ztna-delay-link: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// A raw socket on one interface, every protocol, with virtio-net headers.
int open_iface(const std::string& name) {
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) fail("interface " + name);
  // Protocol 0 receives nothing until bind, so no frame of another interface slips in.
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail("AF_PACKET socket");
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0)
    fail("PACKET_VNET_HDR on " + name);
  if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0)
    fail("PACKET_IGNORE_OUTGOING on " + name);
  packet_mreq mr{};
  mr.mr_ifindex = static_cast<int>(idx);
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
    fail("promiscuous mode on " + name);
  int buf = 4 << 20;
  // Best effort: a burst of super-frames must not overflow the receive buffer.
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(idx);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) fail("bind to " + name);
  return fd;
}

void write_ready(const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << getpid() << "\n";
    if (!f) fail("writing " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) < 0) fail("renaming " + tmp);
}

class Link {
public:
  explicit Link(const Options& o) : opt_(o), rx_(kMaxFrame) {
    if (o.seeded) {
      rng_.seed(o.seed);
    } else {
      std::random_device rd;
      rng_.seed((uint64_t{rd()} << 32) | rd());
    }
    delay_ = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::milli>(o.delay_ms));
    int a = open_iface(o.ifaces[0]);
    int b = open_iface(o.ifaces[1]);
    dirs_[0].in = a;
    dirs_[0].out = b;
    dirs_[0].name = o.ifaces[0] + "->" + o.ifaces[1];
    dirs_[1].in = b;
    dirs_[1].out = a;
    dirs_[1].name = o.ifaces[1] + "->" + o.ifaces[0];
  }

  void run() {
    sigset_t wait_mask;
    sigemptyset(&wait_mask);
    while (!g_stop) {
      auto now = Clock::now();
      for (auto& d : dirs_)
        send_due(d, now);
      pollfd fds[2] = {{dirs_[0].in, POLLIN, 0}, {dirs_[1].in, POLLIN, 0}};
      timespec ts{};
      timespec* tmo = nullptr;
      auto next = next_due();
      if (next) {
        auto left = std::max(Clock::duration::zero(), *next - Clock::now());
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        ts.tv_sec = static_cast<time_t>(ns / 1000000000);
        ts.tv_nsec = static_cast<long>(ns % 1000000000);
        tmo = &ts;
      }
      // The signals are blocked everywhere but here: a signal cannot slip in between the check
      // of g_stop and the wait.
      int n = ppoll(fds, 2, tmo, &wait_mask);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("ppoll");
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents & POLLERR) {
          // An error reported on the socket (ENETDOWN while the interface is down): reading it
          // clears it; the link carries on once the interface is back.
          int err = 0;
          socklen_t len = sizeof err;
          (void)getsockopt(fds[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
          ++dirs_[i].recv_errors;
        }
        if (fds[i].revents & POLLIN) receive(dirs_[i]);
      }
    }
  }

  void summary() const {
    std::string line =
        "ztna-delay-link: delay " + fmt(opt_.delay_ms) + " ms, loss " + fmt(opt_.loss_pct) + "%";
    for (const auto& d : dirs_) {
      line += "; " + d.name + " forwarded " + std::to_string(d.forwarded) + " (" +
              std::to_string(d.gso) + " GSO), lost " + std::to_string(d.lost) + ", queue full " +
              std::to_string(d.queue_full) + ", send errors " + std::to_string(d.send_errors) +
              ", receive errors " + std::to_string(d.recv_errors) + ", still queued " +
              std::to_string(d.queue.size());
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }

private:
  // The largest GSO super-frame a veth passes (64 KiB), its Ethernet header and the vnet header.
  static constexpr size_t kMaxFrame = 65536 + 64 + kVnetHdr;
  // Frames read per socket per wake-up, so that one busy direction cannot starve the other.
  static constexpr int kBatch = 64;

  static std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
  }

  std::optional<Clock::time_point> next_due() const {
    std::optional<Clock::time_point> t;
    for (const auto& d : dirs_) {
      if (!d.queue.empty() && (!t || d.queue.front().due < *t)) t = d.queue.front().due;
    }
    return t;
  }

  void receive(Direction& d) {
    for (int i = 0; i < kBatch; ++i) {
      sockaddr_ll from{};
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(d.in, rx_.data(), rx_.size(), MSG_TRUNC,
                           reinterpret_cast<sockaddr*>(&from), &fl);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        // EINVAL: a frame the vnet header cannot describe (it is consumed all the same).
        ++d.recv_errors;
        continue;
      }
      if (from.sll_pkttype == PACKET_OUTGOING) continue;
      auto len = static_cast<size_t>(n);
      if (len > rx_.size() || len <= kVnetHdr) {
        ++d.recv_errors;
        continue;
      }
      if (opt_.loss_pct > 0 && loss_(rng_) < opt_.loss_pct) {
        ++d.lost;
        continue;
      }
      if (d.queue.size() >= opt_.queue_frames || d.queued_bytes + len > opt_.queue_bytes) {
        ++d.queue_full;
        continue;
      }
      d.queue.push_back(
          {Clock::now() + delay_, std::vector<uint8_t>(rx_.begin(), rx_.begin() + n)});
      d.queued_bytes += len;
    }
  }

  void send_due(Direction& d, Clock::time_point now) {
    while (!d.queue.empty() && d.queue.front().due <= now) {
      auto& f = d.queue.front();
      ssize_t n = send(d.out, f.data.data(), f.data.size(), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        ++d.send_errors;
      else
        ++d.forwarded;
      if (n >= 0 && f.data[1] != 0) ++d.gso; // virtio_net_hdr.gso_type
      d.queued_bytes -= f.data.size();
      d.queue.pop_front();
    }
  }

  Options opt_;
  Clock::duration delay_{};
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> loss_{0.0, 100.0};
  std::vector<uint8_t> rx_;
  Direction dirs_[2];
};

} // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  if (sigprocmask(SIG_BLOCK, &block, nullptr) < 0) fail("sigprocmask");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, nullptr) < 0 || sigaction(SIGINT, &sa, nullptr) < 0)
    fail("sigaction");
  Link link(o);
  if (!o.ready.empty()) write_ready(o.ready);
  link.run();
  link.summary();
  return 0;
}
