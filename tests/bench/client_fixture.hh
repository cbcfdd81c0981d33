// The load-generator client over the fake backend with a hand-driven clock: the fixture of
// tests/bench/client_test.cc and kv_workload_test.cc.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "app/runtime/mailbox.hh"
#include "bench/corewire_bench/client.hh"
#include "dataplane/fake/fake_io.hh"

namespace cw::bench {

// The client over the fake backend with a hand-driven clock (bench client tests share it).
class ClientFixture : public ::testing::Test {
 protected:
  void make(ClientConfig c) {
    cfg = c;
    cfg.target = target;
    cfg.scan_ns = 0;  // sweep for lost requests on every tick
    // The sockets the runtime would hand the service (tests that care set their own).
    if (cfg.sockets.empty()) {
      const uint32_t n = cfg.transport == dp::Transport::udp ? cfg.flows : 1;
      for (uint32_t f = 0; f < n; ++f) cfg.sockets.push_back(dp::SocketId(f));
    }
    res = std::make_unique<ClientResults>();
    client = std::make_unique<Client>(cfg, res.get());
  }
  rt::Ctx<dp::FakeWorker> ctx(uint64_t now) {
    return rt::Ctx<dp::FakeWorker>{io, stats, &svc, mail, 0, 1, 0, now};
  }
  // One loop iteration at time now: tick, then flush; returns what went out.
  std::vector<dp::FakeWorker::SentDatagram> tick(uint64_t now) {
    auto c = ctx(now);
    client->on_tick(c);
    io.flush();
    return io.take_sent();
  }
  // TCP: the first tick connects the one flow; the connection opens.
  dp::ConnId connect() {
    tick(0);
    auto conns = io.take_connects();
    EXPECT_EQ(conns.size(), 1u);
    if (conns.empty()) return dp::kNoConn;
    io.complete_connect(conns[0].first);
    dp::RxItem items[2];
    EXPECT_EQ(io.poll(items, 2, 0), 1u);
    auto c = ctx(0);
    client->on_open(c, items[0]);
    return conns[0].first;
  }
  void reply_dgram(uint64_t now, dp::SocketId s, std::vector<uint8_t> bytes) {
    auto c = ctx(now);
    dp::RxItem it{dp::RxKind::datagram,   dp::CloseReason::none, s, dp::kNoConn, target,
                  uint32_t(bytes.size()), bytes.data()};
    client->on_datagram(c, it);
  }

  dp::Endpoint target{htonl(0x7f000001), htons(11111)};
  dp::IoConfig iocfg;
  dp::FakeWorker io{0, iocfg, 4};
  rt::WorkerStats stats;
  rt::ServiceStats svc;
  rt::Mailboxes mail{1, 8};
  ClientConfig cfg;
  std::unique_ptr<ClientResults> res;
  std::unique_ptr<Client> client;
};

}  // namespace cw::bench
