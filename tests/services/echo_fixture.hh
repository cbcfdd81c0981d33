// A worker over the fake backend running both echo services:
//   socket 0 sockperf (UDP), 1 sockperf (TCP), 2 native (UDP), 3 native (TCP).
// The fake does not care about transports; the socket only selects the service.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "app/runtime/control_contract.hh"
#include "app/runtime/worker.hh"
#include "app/services/echo_native.hh"
#include "app/services/echo_sockperf.hh"
#include "dataplane/fake/fake_io.hh"

namespace cw::svc::testing {

using Bytes = std::vector<uint8_t>;
using Services = std::variant<SockperfEcho, NativeEcho>;

inline constexpr dp::SocketId kSpUdp = 0, kSpTcp = 1, kNtUdp = 2, kNtTcp = 3;
inline constexpr uint16_t kSp = 0, kNt = 1;  // service indexes

class EchoFixture : public ::testing::Test {
 protected:
  dp::IoConfig iocfg;
  dp::FakeWorker io{0, iocfg, 4};
  rt::WorkerStats stats;
  std::vector<rt::ServiceStats> svc = std::vector<rt::ServiceStats>(2);
  rt::Mailboxes mail{1, 8};
  // Small tail buffers, so split frames exercise the tail's growth to the large size.
  rt::LoopConfig loop{.burst = 16, .busy_poll = true, .tail_small = 64, .tail_buffers = 8};
  rt::Worker<dp::FakeWorker, Services> w{
      io, {SockperfEcho{}, NativeEcho{}}, {kSp, kSp, kNt, kNt}, loop, 64, stats, svc, mail};
  dp::Endpoint peer{htonl(0x7f000001), htons(5555)};

  // Run the loop until the fake has nothing left to deliver (bounded).
  void run(int max_iterations = 100000) {
    for (int i = 0; i < max_iterations; ++i) {
      const uint64_t before = stats.items.get();
      w.run_once();
      if (stats.items.get() == before) return;
    }
    FAIL() << "worker did not go idle";
  }
  // Send one datagram, run, return what was sent back (any destination).
  std::vector<dp::FakeWorker::SentDatagram> udp(dp::SocketId s, const Bytes& b) {
    io.inject_datagram(s, peer, b);
    run();
    return io.take_sent();
  }
  // Feed bytes to connection c in segments of at most `seg` bytes (stopping once the
  // connection is closed, as a real peer would see a reset), then run.
  void tcp(dp::ConnId c, const Bytes& b, size_t seg = ~size_t{0}) {
    for (size_t off = 0; off < b.size() && io.is_open(c); off += seg) {
      const size_t n = std::min(seg, b.size() - off);
      io.inject_stream(c, std::span(b.data() + off, n));
      if (seg != ~size_t{0}) w.run_once();  // deliver every segment separately
    }
    run();
  }
  // Mail from the control thread (as `corewirectl service ...` / drain send it), delivered
  // by the next loop iteration.
  void control_mail(uint16_t service, uint16_t kind) {
    rt::Mail m;
    m.service = service;
    m.kind = kind;
    m.from = rt::kControlSender;
    ASSERT_TRUE(mail.send(1, 0, m));
    w.run_once();
  }
  const rt::ServiceStats& sp() const { return svc[kSp]; }
  const rt::ServiceStats& nt() const { return svc[kNt]; }
  // A declared counter (counters.hh) of service s, by its index in the service's kCounters.
  uint64_t declared(uint16_t s, uint32_t i) const { return w.counters().values(s)[i].get(); }
};

inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace cw::svc::testing
