// cw-rtp-relay-ref: the kernel-socket reference for the rtp service's relay (docs/rtp.md,
// docs/BENCHMARKS.md "RTP relay"). A minimal media relay over one plain UDP socket, one
// thread, given every trick the kernel offers so the comparison measures corewire, not a
// handicap of the reference:
//   - recvmmsg batches of 64 (blocking with MSG_WAITFORONE, or --busy-poll);
//   - a session table keyed by the packet's source (address, port) -> the other side, the
//     same open-addressing table corewire uses (app/services/rtp/relay_table.hh);
//   - one sendmmsg per batch; consecutive packets to one destination leave as one UDP_SEGMENT
//     (GSO) train. For RTP relaying that is rare: every stream sends one packet per 20 ms,
//     so two packets of one stream meet in a batch only when the relay has fallen 20 ms
//     behind. The batching of sendmmsg is what saves system calls here, not GSO.
// It checks what it forwards only as far as the RTP/RTCP version (V = 2, 12 bytes at least);
// corewire also parses every header (RFC 3550 checks), so the reference does less per packet.
//   cw-rtp-relay-ref --udp 127.0.0.1:P --sessions FILE [--core N] [--busy-poll] [--no-gso]
// FILE: one session a line, "a.b.c.d:port a.b.c.d:port" (side A, side B). Prints "udp <addr>"
// once listening and, on SIGTERM/SIGINT, one JSON line of counters.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "app/services/rtp/command.hh"
#include "app/services/rtp/relay_table.hh"
#include "bench/reference/common.hh"

namespace cw::ref {
namespace {

constexpr unsigned kBatch = 64;
constexpr uint32_t kBufBytes = 2048;  // an RTP packet; larger datagrams are cut (counted)

struct Stats {
  uint64_t rx = 0, tx = 0, sends = 0, trains = 0, unknown = 0, bad = 0, dropped = 0;
};

struct Relay {
  int fd = -1;
  bool gso = true;
  rtp::RelayTable table;
  std::vector<uint8_t> bufs = std::vector<uint8_t>(size_t(kBatch) * kBufBytes);
  std::array<mmsghdr, kBatch> in{};
  std::array<iovec, kBatch> iov_in{};
  std::array<sockaddr_in, kBatch> from{};
  std::array<iovec, kBatch> iov_out{};
  std::array<uint32_t, kBatch> peer_of{};
  std::array<sockaddr_in, kBatch> to{};
  std::array<mmsghdr, kBatch> out{};
  alignas(cmsghdr) std::array<unsigned char, kBatch * kGsoCtl> ctl{};

  // One batch: receive, route each packet by its source, send. Returns packets received.
  unsigned run_once(Stats& st, int flags) {
    for (unsigned i = 0; i < kBatch; ++i) {
      iov_in[i] = {bufs.data() + size_t(i) * kBufBytes, kBufBytes};
      in[i].msg_hdr = {&from[i], sizeof from[i], &iov_in[i], 1, nullptr, 0, 0};
    }
    const int n = recvmmsg(fd, in.data(), kBatch, flags, nullptr);
    if (n <= 0) return 0;
    uint32_t m = 0;
    uint64_t last_dest = 0;
    for (int i = 0; i < n; ++i) {
      const auto* p = static_cast<const uint8_t*>(iov_in[i].iov_base);
      const uint32_t len = in[i].msg_len;
      if (len < 12 || (p[0] >> 6) != 2 || (in[i].msg_hdr.msg_flags & MSG_TRUNC)) {
        ++st.bad;
        continue;
      }
      const rtp::RelayTable::Entry* e =
          table.find(rtp::endpoint_key({from[i].sin_addr.s_addr, from[i].sin_port}));
      if (!e) {
        ++st.unknown;
        continue;
      }
      iov_out[m] = {const_cast<uint8_t*>(p), len};
      // Consecutive packets to one destination share a peer index: make_trains joins them.
      if (m > 0 && e->dest == last_dest) {
        peer_of[m] = peer_of[m - 1];
      } else {
        const dp::Endpoint d = rtp::endpoint_of_key(e->dest);
        to[m] = sockaddr_in{};
        to[m].sin_family = AF_INET;
        to[m].sin_addr.s_addr = d.addr_be;
        to[m].sin_port = d.port_be;
        peer_of[m] = m;
      }
      last_dest = e->dest;
      ++m;
    }
    st.rx += unsigned(n);
    const uint32_t trains =
        make_trains(m, iov_out.data(), peer_of.data(), to.data(), out.data(), ctl.data(), gso);
    const uint32_t done = send_trains(fd, out.data(), trains, &st.sends);
    st.trains += trains;
    st.tx += done;
    st.dropped += m - done;
    return unsigned(n);
  }
};

int fail(const std::string& what) {
  std::fprintf(stderr, "cw-rtp-relay-ref: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

// The sessions file into the table (both directions of each line).
bool load_sessions(const std::string& path, rtp::RelayTable& table, size_t* sessions) {
  std::vector<std::pair<dp::Endpoint, dp::Endpoint>> pairs;
  std::string err;
  if (!read_session_pairs(path, &pairs, &err)) {
    std::fprintf(stderr, "cw-rtp-relay-ref: %s\n", err.c_str());
    return false;
  }
  table = rtp::RelayTable(2 * pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const uint64_t a = rtp::endpoint_key(pairs[i].first), b = rtp::endpoint_key(pairs[i].second);
    if (!table.insert(a, b, uint32_t(i)) || !table.insert(b, a, uint32_t(i))) {
      std::fprintf(stderr, "cw-rtp-relay-ref: %s: an endpoint twice\n", path.c_str());
      return false;
    }
  }
  *sessions = pairs.size();
  return true;
}

int run(int argc, char** argv) {
  CLI::App app{"cw-rtp-relay-ref: kernel-socket RTP relay reference (recvmmsg/sendmmsg, GSO)"};
  std::string udp_at, sessions_file;
  int core = -1;
  bool busy = false, no_gso = false;
  app.add_option("--udp", udp_at, "UDP address:port to relay on")->required();
  app.add_option("--sessions", sessions_file, "file: 'A B' endpoint pairs, one a line")->required();
  app.add_option("--core", core, "pin to this CPU");
  app.add_flag("--busy-poll", busy, "spin on recvmmsg instead of blocking in it");
  app.add_flag("--no-gso", no_gso, "one datagram per sendmmsg entry (no trains)");
  CLI11_PARSE(app, argc, argv);
  if (!pin(core)) return fail("--core " + std::to_string(core));
  on_stop_signals();
  auto relay = std::make_unique<Relay>();
  relay->gso = !no_gso;
  size_t sessions = 0;
  if (!load_sessions(sessions_file, relay->table, &sessions)) return fail(sessions_file);
  auto addr = dp::parse_endpoint(udp_at);
  if (!addr) {
    std::fprintf(stderr, "cw-rtp-relay-ref: %s\n", addr.error().message.c_str());
    return 2;
  }
  std::string bound;
  relay->fd = open_socket(SOCK_DGRAM, *addr, &bound);
  if (relay->fd < 0) return fail(udp_at);
  // Blocking mode wakes every 100 ms to see the stop flag.
  const int flags = busy ? MSG_DONTWAIT : MSG_WAITFORONE;
  if (!busy) {
    if (fcntl(relay->fd, F_SETFL, fcntl(relay->fd, F_GETFL) & ~O_NONBLOCK) != 0)
      return fail("fcntl");
    timeval tv{0, 100'000};
    setsockopt(relay->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  std::printf("udp %s sessions %zu\n", bound.c_str(), sessions);
  std::fflush(stdout);
  Stats st;
  while (!g_stop) relay->run_once(st, flags);
  std::printf(
      "{\"rx\":%llu,\"tx\":%llu,\"sends\":%llu,\"trains\":%llu,\"unknown\":%llu,\"bad\":%llu,"
      "\"dropped\":%llu,\"sessions\":%zu,\"gso\":%s}\n",
      (unsigned long long)st.rx, (unsigned long long)st.tx, (unsigned long long)st.sends,
      (unsigned long long)st.trains, (unsigned long long)st.unknown, (unsigned long long)st.bad,
      (unsigned long long)st.dropped, sessions, relay->gso ? "true" : "false");
  return 0;
}

}  // namespace
}  // namespace cw::ref

int main(int argc, char** argv) {
  return cw::ref::run(argc, argv);
}
