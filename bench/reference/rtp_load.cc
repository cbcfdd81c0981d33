// cw-rtp-load: the RTP relay benchmark's load generator (docs/BENCHMARKS.md "RTP relay").
// N sessions, each two streams (A -> relay -> B and B -> relay -> A) of RTP packets (PT 0,
// 160 bytes of payload, as a 20 ms PCMU packet) at --pps each, from one pinned thread:
//   - every session side has its own source address (127.x.y.z on loopback) on one of two
//     sockets bound to 0.0.0.0:port-of-side-A / -B; the source is set per packet with
//     IP_PKTINFO, so thousands of sessions need two sockets, not thousands;
//   - pacing: the 2N streams are spread evenly over the packet interval (stream s sends at
//     t0 + s x interval / 2N + k x interval); the loop sends whatever is due (sendmmsg, 32
//     packets a round) and drains both sockets (recvmmsg) in turn, busy, never sleeping;
//   - each payload carries the stream, its send time (CLOCK_REALTIME, taken just before the
//     sendmmsg that sends it) and whether it is in the measured window.
// Measured: each packet's delay (its arrival at our socket, SO_TIMESTAMPNS - its send time,
// both CLOCK_REALTIME) in a histogram
// (p50/p99/p99.9/max) and each stream's RFC 3550 A.8 interarrival jitter of that delay
// (J += (|D| - J) / 16), i.e. the jitter the path added; loss over the window's packets.
//   cw-rtp-load --relay 127.0.0.1:P --sessions FILE [--pps 50] [--warmup 2] [--seconds 5]
//               [--drain 0.5] [--core 0] [--direct]
// FILE: the relay's sessions, "A B" a line (every A one port, every B another).
// --direct sends each side straight to the other (no relay): the generator's and loopback's
// own delay, the floor under the relay's. Prints one JSON line.
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <vector>

#include "bench/hist/histogram.hh"
#include "bench/reference/common.hh"

namespace cw::ref {
namespace {

constexpr unsigned kSendBatch = 32;
constexpr unsigned kRecvBatch = 64;
constexpr uint32_t kPayload = 160;
constexpr uint32_t kPacket = 12 + kPayload;
constexpr size_t kPktinfoCtl = CMSG_SPACE(sizeof(in_pktinfo));

uint64_t clock_ns(clockid_t c) {
  timespec t;
  clock_gettime(c, &t);
  return uint64_t(t.tv_sec) * 1'000'000'000u + uint64_t(t.tv_nsec);
}
// The schedule's clock.
uint64_t now_ns() {
  return clock_ns(CLOCK_MONOTONIC);
}
// The delay's clock: SO_TIMESTAMPNS stamps a datagram with CLOCK_REALTIME when it is queued
// to the socket, so the send time in the payload is taken on that clock too.
uint64_t wall_ns() {
  return clock_ns(CLOCK_REALTIME);
}

void put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

struct Stream {
  uint16_t seq = 0;
  uint32_t ts = 0;
  uint64_t received = 0;
  int64_t last_transit = 0;
  bool have_transit = false;
  double jitter_ns = 0;  // RFC 3550 A.8 over the delay, ns
};

struct Payload {  // at the start of the RTP payload, host order (the generator reads it)
  uint64_t send_ns;
  uint32_t stream;
  uint32_t measured;
};

int fail(const std::string& what) {
  std::fprintf(stderr, "cw-rtp-load: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

int open_side(uint16_t port_be) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  size_udp_buffers(fd);
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0) {
    close(fd);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = port_be;  // any address: every side's 127.x.y.z:port arrives here
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int run(int argc, char** argv) {
  CLI::App app{"cw-rtp-load: RTP relay load generator (delay, jitter, loss per stream)"};
  std::string relay_at, sessions_file;
  double pps = 50, warmup = 2, seconds = 5, drain = 0.5;
  int core = -1;
  bool direct = false;
  app.add_option("--relay", relay_at, "the relay's address:port")->required();
  app.add_option("--sessions", sessions_file, "file: 'A B' endpoint pairs, one a line")->required();
  app.add_option("--pps", pps, "packets per second per stream (each way)");
  app.add_option("--warmup", warmup, "seconds sent before the measured window");
  app.add_option("--seconds", seconds, "the measured window");
  app.add_option("--drain", drain, "seconds to receive after the last packet");
  app.add_option("--core", core, "pin to this CPU");
  app.add_flag("--direct", direct, "send each side straight to the other (no relay)");
  CLI11_PARSE(app, argc, argv);
  if (pps <= 0 || pps > 1000 || seconds <= 0 || seconds > 600 || warmup < 0 || warmup > 60 ||
      drain < 0 || drain > 10) {
    std::fprintf(stderr, "cw-rtp-load: --pps 0..1000, --seconds 0..600, --warmup 0..60\n");
    return 2;
  }
  if (!pin(core)) return fail("--core " + std::to_string(core));
  on_stop_signals();
  auto relay = dp::parse_endpoint(relay_at);
  if (!relay) {
    std::fprintf(stderr, "cw-rtp-load: %s\n", relay.error().message.c_str());
    return 2;
  }
  // The sessions: side[2i] = A, side[2i+1] = B of session i.
  std::vector<dp::Endpoint> side;
  {
    std::vector<std::pair<dp::Endpoint, dp::Endpoint>> pairs;
    std::string err;
    if (!read_session_pairs(sessions_file, &pairs, &err)) {
      std::fprintf(stderr, "cw-rtp-load: %s\n", err.c_str());
      return 2;
    }
    for (const auto& [a, b] : pairs) {
      side.push_back(a);
      side.push_back(b);
    }
  }
  if (side.empty() || side.size() > 2'000'000) {
    std::fprintf(stderr, "cw-rtp-load: 1..1,000,000 sessions expected\n");
    return 2;
  }
  for (size_t i = 0; i < side.size(); ++i)
    if (side[i].port_be != side[i % 2].port_be) {
      std::fprintf(stderr, "cw-rtp-load: every side A needs one port, every side B another\n");
      return 2;
    }
  const int fd[2] = {open_side(side[0].port_be), open_side(side[1].port_be)};
  if (fd[0] < 0 || fd[1] < 0) return fail("bind the sides' ports");
  const size_t streams = side.size();  // stream s: from side[s] to side[s ^ 1]
  std::vector<Stream> st(streams);
  for (size_t s = 0; s < streams; ++s) {
    st[s].seq = uint16_t(s * 7919);
    st[s].ts = uint32_t(s * 104729);
  }
  const uint64_t interval_ns = uint64_t(1e9 / pps);
  const uint64_t t0 = now_ns() + 10'000'000;
  const uint64_t m0 = t0 + uint64_t(warmup * 1e9), m1 = m0 + uint64_t(seconds * 1e9);
  const uint64_t end = m1 + uint64_t(drain * 1e9);
  // Packet j (all streams, in send order) is stream j % streams, due at t0 + j x step.
  const double step_ns = double(interval_ns) / double(streams);

  // Send buffers per socket (0: side A's, 1: side B's).
  std::array<std::array<std::array<uint8_t, kPacket>, kSendBatch>, 2> out{};
  std::array<std::array<iovec, kSendBatch>, 2> out_iov{};
  std::array<std::array<mmsghdr, kSendBatch>, 2> out_msg{};
  std::array<std::array<sockaddr_in, kSendBatch>, 2> out_to{};
  alignas(cmsghdr) std::array<std::array<unsigned char, kPktinfoCtl>, 2 * kSendBatch> out_ctl{};
  std::array<std::array<uint8_t, 2048>, kRecvBatch> in{};
  std::array<iovec, kRecvBatch> in_iov{};
  std::array<mmsghdr, kRecvBatch> in_msg{};
  alignas(cmsghdr) std::array<std::array<unsigned char, CMSG_SPACE(sizeof(timespec))>, kRecvBatch>
      in_ctl{};

  bench::Histogram delay;
  uint64_t next_j = 0, sent = 0, sent_measured = 0, send_fail = 0, received = 0;
  uint64_t unstamped = 0, received_measured = 0, foreign = 0, behind_max = 0, late_batches = 0;
  for (uint64_t now = now_ns(); now < end && !g_stop; now = now_ns()) {
    // Send what is due (until m1): up to 4 rounds of kSendBatch packets, each round's
    // packets split by socket (the stream's side) into one sendmmsg each, then receive.
    if (now >= t0 && now < m1) {
      const uint64_t due = uint64_t(double(now - t0) / step_ns) + 1;
      if (due - next_j > 4 * kSendBatch) ++late_batches;
      behind_max = std::max(behind_max, due - next_j);
      for (unsigned round = 0; round < 4 && next_j < due; ++round) {
        unsigned n[2] = {0, 0};
        const uint64_t send_ns = now_ns(), stamp_ns = wall_ns();
        const uint64_t stop = std::min(due, next_j + kSendBatch);
        for (uint64_t j = next_j; j < stop; ++j) {
          const size_t s = size_t(j % streams);
          const unsigned w = unsigned(s & 1), k = n[w]++;
          Stream& x = st[s];
          uint8_t* p = out[w][k].data();
          p[0] = 0x80;
          p[1] = 0;  // PT 0 (PCMU)
          p[2] = uint8_t(x.seq >> 8);
          p[3] = uint8_t(x.seq);
          put32(p + 4, x.ts);
          put32(p + 8, uint32_t(0x52000000u + s));
          ++x.seq;
          x.ts += 160;
          const Payload pl{stamp_ns, uint32_t(s), send_ns >= m0 ? 1u : 0u};
          std::memcpy(p + 12, &pl, sizeof pl);
          out_iov[w][k] = {p, kPacket};
          const dp::Endpoint to = direct ? side[s ^ 1] : *relay;
          out_to[w][k] = sockaddr_in{};
          out_to[w][k].sin_family = AF_INET;
          out_to[w][k].sin_addr.s_addr = to.addr_be;
          out_to[w][k].sin_port = to.port_be;
          msghdr& h = out_msg[w][k].msg_hdr;
          h = msghdr{};
          h.msg_name = &out_to[w][k];
          h.msg_namelen = sizeof out_to[w][k];
          h.msg_iov = &out_iov[w][k];
          h.msg_iovlen = 1;
          // The source address of this side (IP_PKTINFO's ipi_spec_dst).
          h.msg_control = out_ctl[w * kSendBatch + k].data();
          h.msg_controllen = kPktinfoCtl;
          cmsghdr* c = CMSG_FIRSTHDR(&h);
          c->cmsg_level = IPPROTO_IP;
          c->cmsg_type = IP_PKTINFO;
          c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
          in_pktinfo pi{};
          pi.ipi_spec_dst.s_addr = side[s].addr_be;
          std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
        }
        next_j = stop;
        for (unsigned w = 0; w < 2; ++w) {
          unsigned done = 0;
          while (done < n[w]) {
            const int k = sendmmsg(fd[w], out_msg[w].data() + done, n[w] - done, 0);
            if (k <= 0) break;  // counted: the socket refused (buffer full, or an error)
            done += unsigned(k);
          }
          send_fail += n[w] - done;
          sent += done;
          if (send_ns >= m0) sent_measured += done;
        }
      }
    }
    // Receive both sides.
    for (int w = 0; w < 2; ++w) {
      for (unsigned i = 0; i < kRecvBatch; ++i) {
        in_iov[i] = {in[i].data(), in[i].size()};
        in_msg[i].msg_hdr = msghdr{};
        in_msg[i].msg_hdr.msg_iov = &in_iov[i];
        in_msg[i].msg_hdr.msg_iovlen = 1;
        in_msg[i].msg_hdr.msg_control = in_ctl[i].data();
        in_msg[i].msg_hdr.msg_controllen = in_ctl[i].size();
      }
      const int n = recvmmsg(fd[w], in_msg.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) continue;
      const uint64_t read_ns = wall_ns();
      for (int i = 0; i < n; ++i) {
        Payload pl;
        if (in_msg[i].msg_len != kPacket) {
          ++foreign;
          continue;
        }
        std::memcpy(&pl, in[size_t(i)].data() + 12, sizeof pl);
        // Arrival: when the kernel queued it to our socket (so the generator's own lateness
        // in reading does not count as the relay's delay); the read time if not stamped.
        uint64_t rx_ns = read_ns;
        bool stamped = false;
        for (cmsghdr* c = CMSG_FIRSTHDR(&in_msg[i].msg_hdr); c;
             c = CMSG_NXTHDR(&in_msg[i].msg_hdr, c))
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts;
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            rx_ns = uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
            stamped = true;
          }
        unstamped += !stamped;
        // A stream's packets arrive at the other side's socket.
        if (pl.stream >= streams || (pl.stream & 1) == unsigned(w) || pl.send_ns > rx_ns) {
          ++foreign;
          continue;
        }
        ++received;
        if (!pl.measured) continue;
        ++received_measured;
        const int64_t transit = int64_t(rx_ns - pl.send_ns);
        delay.record(uint64_t(transit));
        Stream& x = st[pl.stream];
        ++x.received;
        if (x.have_transit)
          x.jitter_ns += (std::fabs(double(transit - x.last_transit)) - x.jitter_ns) / 16;
        x.last_transit = transit;
        x.have_transit = true;
      }
    }
  }
  std::vector<double> jit;
  jit.reserve(streams);
  for (const Stream& x : st)
    if (x.received > 1) jit.push_back(x.jitter_ns);
  std::sort(jit.begin(), jit.end());
  auto pct = [&jit](double p) {
    return jit.empty() ? 0.0 : jit[std::min(jit.size() - 1, size_t(p / 100 * double(jit.size())))];
  };
  double jmean = 0;
  for (double v : jit) jmean += v;
  if (!jit.empty()) jmean /= double(jit.size());
  const double loss = sent_measured ? 1.0 - double(received_measured) / double(sent_measured) : 1.0;
  std::printf(
      "{\"sessions\":%zu,\"pps\":%g,\"seconds\":%g,\"direct\":%s,\"sent\":%llu,"
      "\"sent_measured\":%llu,\"received\":%llu,\"received_measured\":%llu,\"loss\":%.6f,"
      "\"send_fail\":%llu,\"foreign\":%llu,\"behind_max\":%llu,\"late_batches\":%llu,\"unstamped\":"
      "%llu,"
      "\"delay_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
      "\"mean\":%.1f},\"jitter_us\":{\"mean\":%.2f,\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
      streams / 2, pps, seconds, direct ? "true" : "false", (unsigned long long)sent,
      (unsigned long long)sent_measured, (unsigned long long)received,
      (unsigned long long)received_measured, loss, (unsigned long long)send_fail,
      (unsigned long long)foreign, (unsigned long long)behind_max, (unsigned long long)late_batches,
      (unsigned long long)unstamped, double(delay.percentile(50)) / 1e3,
      double(delay.percentile(90)) / 1e3, double(delay.percentile(99)) / 1e3,
      double(delay.percentile(99.9)) / 1e3, double(delay.max()) / 1e3, delay.mean() / 1e3,
      jmean / 1e3, pct(50) / 1e3, pct(99) / 1e3, jit.empty() ? 0.0 : jit.back() / 1e3);
  return 0;
}

}  // namespace
}  // namespace cw::ref

int main(int argc, char** argv) {
  return cw::ref::run(argc, argv);
}
