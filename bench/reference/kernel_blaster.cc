// cw-kernel-blaster: the bare kernel-path load generator, the counterpart of cw-dpdk-blaster.
// One thread, busy-polling: --flows connected UDP sockets, each keeping --window requests
// outstanding (closed loop), refilled with one sendmmsg (or, --gso, one UDP_SEGMENT train)
// per flow and drained with recvmmsg. No per-request bookkeeping, no latency: it measures
// how many replies per second a server returns when the client costs as little as the
// kernel allows, so a server's throughput figure is not the generator's.
//   cw-kernel-blaster --target 127.0.0.1:11111 [--proto sockperf|native|raw] [-m 64]
//                     [--flows 4] [--window 64] [--duration 5] [--warmup 1] [--core N] [--gso]
// A flow that has had no reply for --stall-ms counts what it has outstanding as lost and
// starts again (so a drop does not stop it). Prints one JSON line:
//   {"sent":..,"received":..,"lost":..,"elapsed_s":..,"msg_per_s":..,"all_received":..}
#include <arpa/inet.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <vector>

#include "app/protocol/native.hh"
#include "app/protocol/sockperf.hh"
#include "bench/reference/common.hh"

namespace cw::ref {
namespace {

using Clock = std::chrono::steady_clock;
constexpr unsigned kBatch = 64;  // datagrams per sendmmsg / recvmmsg

struct Flow {
  int fd = -1;
  uint32_t outstanding = 0;
  Clock::time_point last_rx;
};

// The request every flow sends (servers answer any sequence number / request id).
std::vector<uint8_t> make_request(const std::string& proto, uint32_t size) {
  std::vector<uint8_t> m(size);
  for (uint32_t i = 0; i < size; ++i) m[i] = uint8_t(i * 7 + 1);
  if (proto == "sockperf") {
    proto::sockperf::encode_header(
        m.data(), {0, proto::sockperf::kClient | proto::sockperf::kPongRequest, size});
  } else if (proto == "native") {
    proto::native::Header h;
    h.service = 1;  // the echo service (app/services/echo_native.hh)
    h.request_id = 1;
    h.payload_len = size - proto::native::kHeaderSize;
    proto::native::encode_header(m.data(), h);
  }
  return m;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "cw-kernel-blaster: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

int run(int argc, char** argv) {
  CLI::App app{"cw-kernel-blaster: bare closed-loop UDP load generator (recvmmsg/sendmmsg)"};
  std::string target, proto = "sockperf";
  uint32_t size = 64, flows = 4, window = 64, stall_ms = 100;
  double duration = 5, warmup = 1;
  int core = -1;
  bool gso = false;
  app.add_option("--target", target, "server address:port")->required();
  app.add_option("--proto", proto, "sockperf | native | raw")
      ->check(CLI::IsMember({"sockperf", "native", "raw"}));
  app.add_option("-m,--msg-size", size, "bytes per message")->check(CLI::Range(24u, 1472u));
  app.add_option("--flows", flows, "UDP sockets")->check(CLI::Range(1u, 4096u));
  app.add_option("--window", window, "outstanding per flow")->check(CLI::Range(1u, 4096u));
  app.add_option("--duration", duration, "measured seconds")->check(CLI::Range(0.01, 3600.0));
  app.add_option("--warmup", warmup, "seconds sent before measuring")->check(CLI::Range(0.0, 60.0));
  app.add_option("--stall-ms", stall_ms, "a flow silent this long counts its window lost");
  app.add_option("--core", core, "pin to this CPU");
  app.add_flag("--gso", gso, "send each refill as one UDP_SEGMENT train");
  CLI11_PARSE(app, argc, argv);
  auto to = dp::parse_endpoint(target);
  if (!to) {
    std::fprintf(stderr, "cw-kernel-blaster: %s\n", to.error().message.c_str());
    return 2;
  }
  if (!pin(core)) return fail("--core " + std::to_string(core));
  on_stop_signals();

  std::vector<Flow> fl(flows);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_addr.s_addr = to->addr_be;
  peer.sin_port = to->port_be;
  for (auto& f : fl) {
    f.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (f.fd >= 0) size_udp_buffers(f.fd);
    if (f.fd < 0 || connect(f.fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0)
      return fail("socket/connect " + target);
  }
  const std::vector<uint8_t> req = make_request(proto, size);
  std::vector<uint8_t> rx(size_t(kBatch) * 2048);
  std::array<iovec, kBatch> tx_iov, rx_iov;
  std::array<mmsghdr, kBatch> tx_msg{}, rx_msg{};
  for (unsigned i = 0; i < kBatch; ++i) {
    tx_iov[i] = {const_cast<uint8_t*>(req.data()), size};
    tx_msg[i].msg_hdr.msg_iov = &tx_iov[i];
    tx_msg[i].msg_hdr.msg_iovlen = 1;
    rx_iov[i] = {rx.data() + size_t(i) * 2048, 2048};
    rx_msg[i].msg_hdr.msg_iov = &rx_iov[i];
    rx_msg[i].msg_hdr.msg_iovlen = 1;
  }
  alignas(cmsghdr) unsigned char ctl[kGsoCtl];
  const uint32_t train_max = std::min<uint32_t>(kMaxSegs, kMaxTrainBytes / size);

  const auto start = Clock::now();
  const auto measure_at =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const auto end_at = measure_at + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(duration));
  const auto stall = std::chrono::milliseconds(stall_ms);
  uint64_t sent = 0, received = 0, lost = 0;  // measured phase only
  uint64_t all_received = 0;                  // warm-up included (what the server answered)
  bool measuring = false;
  for (auto& f : fl) f.last_rx = start;
  for (uint64_t loop = 0; !g_stop; ++loop) {
    const auto now = Clock::now();
    if (!measuring && now >= measure_at) measuring = true, sent = received = lost = 0;
    if (now >= end_at) break;
    for (auto& f : fl) {
      // Refill the window: one sendmmsg, or one GSO train per train_max requests.
      while (f.outstanding < window) {
        const uint32_t want = std::min(window - f.outstanding, gso ? train_max : kBatch);
        int k;
        if (gso && want > 1) {
          msghdr m{};
          m.msg_iov = tx_iov.data();
          m.msg_iovlen = want;
          set_gso(&m, ctl, uint16_t(size));
          k = sendmsg(f.fd, &m, MSG_DONTWAIT) > 0 ? int(want) : -1;
        } else {
          k = sendmmsg(f.fd, tx_msg.data(), want, MSG_DONTWAIT);
        }
        if (k <= 0) break;
        f.outstanding += uint32_t(k);
        sent += uint64_t(k);
      }
      // Drain its replies.
      for (;;) {
        const int r = recvmmsg(f.fd, rx_msg.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (r <= 0) break;
        const uint32_t got = std::min<uint32_t>(uint32_t(r), f.outstanding);
        f.outstanding -= got;
        received += uint64_t(r);
        all_received += uint64_t(r);
        f.last_rx = now;
        if (unsigned(r) < kBatch) break;
      }
      if (f.outstanding && now - f.last_rx > stall) {
        lost += f.outstanding;
        f.outstanding = 0;
        f.last_rx = now;
      }
    }
  }
  const double elapsed =
      std::chrono::duration<double>(std::min(Clock::now(), end_at) - measure_at).count();
  std::printf(
      "{\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"elapsed_s\":%.6f,\"msg_per_s\":%.1f,"
      "\"all_received\":%llu,\"flows\":%u,\"window\":%u,\"msg_size\":%u,\"gso\":%s}\n",
      (unsigned long long)sent, (unsigned long long)received, (unsigned long long)lost, elapsed,
      elapsed > 0 ? double(received) / elapsed : 0.0, (unsigned long long)all_received, flows,
      window, size, gso ? "true" : "false");
  for (auto& f : fl) close(f.fd);
  return 0;
}

}  // namespace
}  // namespace cw::ref

int main(int argc, char** argv) {
  return cw::ref::run(argc, argv);
}
