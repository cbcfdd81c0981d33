// The rtp service's run-time sessions over the fake backend, two workers, sessions owned by
// worker 1: commands arrive at worker 0 as the control thread sends them (rt::ServiceCommand
// through the control ring) and are forwarded to the owner; open starts the session's tone
// and reports, packets from its peer reach its statistics wherever they arrive, close sends
// BYE and frees the slot; bad commands, duplicates and a full table are errors. Relay
// sessions opened at run time forward each side to the other on every worker.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "app/runtime/control_contract.hh"
#include "app/runtime/worker.hh"
#include "app/services/rtp/service.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/services/run_idle.hh"

namespace cw::svc {
namespace {

using Services = std::variant<Rtp>;
using W = rt::Worker<dp::FakeWorker, Services>;
constexpr dp::SocketId kUdp = 0;
constexpr unsigned kOwner = 1;

dp::Endpoint ep(uint16_t port) {
  return {htonl(0x7f000001), htons(port)};
}

std::vector<uint8_t> rtp_packet(uint16_t seq, uint32_t ts, uint32_t ssrc) {
  std::vector<uint8_t> b(12 + 160, 0xff);
  rtp::proto::write_rtp_header(
      b.data(), {.marker = false, .pt = 0, .seq = seq, .timestamp = ts, .ssrc = ssrc});
  return b;
}

struct World {
  explicit World(uint32_t max_sessions, rtp::Mode mode = rtp::Mode::endpoint)
      : mail(2, 64, 4096), stats(2), svc(2) {
    rtp::RtpOptions o;
    o.mode = mode;
    o.worker = kOwner;
    o.max_sessions = max_sessions;
    o.rtcp_min_ms = 100;
    for (unsigned w = 0; w < 2; ++w) {
      io.push_back(std::make_unique<dp::FakeWorker>(w, iocfg, 2));
      const rt::SocketRef refs[2] = {{kUdp, dp::Transport::udp, true, true},
                                     {1, dp::Transport::udp, false, w == kOwner}};
      const dp::Endpoint bound[2] = {ep(5004), ep(40000)};
      rt::ServiceCtx c{w, 2, 64, 0, refs, {}, bound, {}};
      std::vector<Services> v;
      v.emplace_back(std::in_place_type<Rtp>, c, o);
      workers.push_back(std::make_unique<W>(*io[w], std::move(v), std::vector<uint16_t>{0, 0}, loop,
                                            64, stats[w], std::span(&svc[w], 1), mail));
    }
  }

  Rtp& instance(unsigned w) { return std::get<Rtp>(workers[w]->service(0)); }
  [[gnu::noinline]] uint64_t total(uint32_t i) {
    uint64_t t = 0;
    for (unsigned w = 0; w < 2; ++w) t += workers[w]->counters().values(0)[i].get();
    return t;
  }
  void run() {
    ASSERT_TRUE(cw::testing::run_until_idle<W>(workers, stats, mail, 100000))
        << "workers did not go idle";
  }

  // What `corewirectl rtp ...` makes of a command: sent to worker 0, answered by the owner.
  std::string command(const std::string& text) {
    rt::ServiceCommand c;
    c.request = text;
    rt::Mail m;
    m.service = 0;
    m.kind = rt::kMailServiceCommand;
    m.from = rt::kControlSender;
    m.p = &c;
    EXPECT_TRUE(mail.send(2, 0, m));
    for (int i = 0; i < 100 && !c.done.load(std::memory_order_acquire); ++i) run();
    EXPECT_TRUE(c.done.load()) << text;
    return c.reply;
  }

  // Runs the owner for up to `ms` of real time (its timers fire on the monotonic clock),
  // collecting what it sent.
  std::vector<dp::FakeWorker::SentDatagram> sent_for(int ms) {
    std::vector<dp::FakeWorker::SentDatagram> out;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      run();
      for (auto& d : io[kOwner]->take_sent()) out.push_back(std::move(d));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return out;
  }

  dp::IoConfig iocfg;
  rt::Mailboxes mail;
  rt::LoopConfig loop{.burst = 16, .busy_poll = true};
  std::vector<rt::WorkerStats> stats;
  std::vector<rt::ServiceStats> svc;
  std::vector<std::unique_ptr<dp::FakeWorker>> io;
  std::vector<std::unique_ptr<W>> workers;
};

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Each command in turn, its reply holding the expected part.
void expect_replies(World& x, std::initializer_list<std::pair<const char*, const char*>> cases) {
  for (const auto& [cmd, part] : cases) {
    const std::string r = x.command(cmd);
    EXPECT_TRUE(has(r, part)) << cmd << ": " << r;
  }
}

TEST(RtpSessions, OpenFlowListClose) {
  World x(4);
  const std::string r = x.command("open peer=127.0.0.1:6000 ssrc=100 pt=8");
  EXPECT_TRUE(has(r, "\"ok\":true")) << r;
  EXPECT_TRUE(has(r, "\"worker\":1")) << r;
  EXPECT_TRUE(has(r, "\"ssrc\":100")) << r;
  EXPECT_EQ(x.total(Rtp::kSessions), 1u);
  // The tone goes to the peer from the session's port every 20 ms, with its SSRC and PT;
  // an SR follows (first report: half of the 100 ms minimum, randomised).
  const auto sent = x.sent_for(800);
  size_t rtp_pkts = 0, rtcp_pkts = 0;
  for (const auto& d : sent) {
    EXPECT_EQ(d.sock, kUdp);
    EXPECT_EQ(d.to, ep(6000));
    if (d.bytes.size() >= 2 && d.bytes[1] == 200) {
      ++rtcp_pkts;
    } else {
      ASSERT_EQ(d.bytes.size(), 12u + 160u);
      EXPECT_EQ(d.bytes[1] & 0x7f, 8);
      EXPECT_EQ(d.bytes[11], 100);
      ++rtp_pkts;
    }
  }
  EXPECT_GE(rtp_pkts, 20u);  // 40 in 800 ms, allowing for a slow machine
  EXPECT_GE(rtcp_pkts, 1u);  // A.7 with 200-byte reports: 0.4 s x [0.5, 1.5) / 1.22
  // The peer's packets reach the owner from either worker (one at a time, so that they
  // stay in order); a stranger's are dropped.
  for (uint16_t q = 0; q < 10; ++q) {
    const auto p = rtp_packet(uint16_t(1000 + q), 160u * q, 0xabc);
    x.io[q % 2]->inject_datagram(kUdp, ep(6000), p);
    x.run();
  }
  x.io[0]->inject_datagram(kUdp, ep(6999), rtp_packet(1, 1, 1));
  x.run();
  EXPECT_EQ(x.total(Rtp::kRtpIn), 10u);
  EXPECT_EQ(x.total(Rtp::kUnknownSource), 1u);
  const rtp::Session* s = x.instance(kOwner).session(1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->rtp_in, 10u);
  EXPECT_EQ(s->remote.ssrc, 0xabcu);
  EXPECT_EQ(s->remote.stats.received(), 9u);  // the first is in probation (A.1)
  const std::string l = x.command("list");
  EXPECT_TRUE(has(l, "\"peer\":\"127.0.0.1:6000\"")) << l;
  EXPECT_TRUE(has(l, "\"rtp_in\":10")) << l;
  EXPECT_TRUE(has(l, "\"peer_ssrc\":2748")) << l;
  // Close: the last report carries BYE; the slot is free, the session gone.
  x.io[kOwner]->take_sent();
  const std::string c = x.command("close peer=127.0.0.1:6000");
  EXPECT_TRUE(has(c, "\"closed\":1")) << c;
  bool bye = false;
  for (const auto& d : x.io[kOwner]->take_sent()) {
    rtp::proto::Compound k;
    if (rtp::proto::parse_rtcp({d.bytes.data(), d.bytes.size()}, k) != rtp::proto::Error::ok)
      continue;
    for (size_t i = 0; i < k.n; ++i) bye = bye || k.pkts[i].type == rtp::proto::kBye;
  }
  EXPECT_TRUE(bye);
  EXPECT_EQ(x.instance(kOwner).session(1), nullptr);
  EXPECT_EQ(x.total(Rtp::kSessions), 0u);
  EXPECT_TRUE(has(x.command("list"), "\"sessions\":[]"));
  // Nothing more is sent to the closed session's peer.
  EXPECT_TRUE(x.sent_for(60).empty());
}

TEST(RtpSessions, BadCommandsAreErrors) {
  World x(2);
  for (const char* bad :
       {"", "frob", "open", "open peer=nowhere", "open peer=127.0.0.1:0", "open peer=0.0.0.0:5",
        "open peer=127.0.0.1:6000 pt=72", "open peer=127.0.0.1:6000 pt=128",
        "open peer=127.0.0.1:6000 ssrc=0", "open peer=127.0.0.1:6000 color=red",
        "open peer=127.0.0.1:6000 peer=127.0.0.1:6001", "list all", "close",
        "close peer=127.0.0.1:6000", "open peer=127.0.0.1:6000 ssrc=99999999999"}) {
    const std::string r = x.command(bad);
    EXPECT_TRUE(has(r, "\"ok\":false")) << bad << ": " << r;
  }
  EXPECT_EQ(x.total(Rtp::kSessions), 0u);
  // Duplicates: the same peer (and peer_ssrc); our SSRC twice toward one peer. The same peer
  // with a given peer_ssrc is another session (RTP streams demultiplexed by SSRC on one
  // address); then the table (2) is full.
  expect_replies(x, {{"open peer=127.0.0.1:6000 ssrc=5", "\"ok\":true"},
                     {"open peer=127.0.0.1:6000", "duplicate"},
                     {"open peer=127.0.0.1:6000 peer_ssrc=7 ssrc=5", "duplicate"},
                     {"open peer=127.0.0.1:6000 peer_ssrc=7 ssrc=6", "\"ok\":true"},
                     {"open peer=127.0.0.1:6001", "table full"},
                     {"close peer=127.0.0.1:6000 peer_ssrc=8", "no session"},
                     {"close peer=127.0.0.1:6000 peer_ssrc=7", "\"ok\":true"},
                     {"open peer=127.0.0.1:6001", "\"ok\":true"}});
  EXPECT_EQ(x.total(Rtp::kSessions), 2u);
}

TEST(RtpSessions, PeerSsrcDemultiplexesOneAddress) {
  World x(4);
  ASSERT_TRUE(has(x.command("open peer=127.0.0.1:6000 ssrc=11 peer_ssrc=21"), "\"ok\":true"));
  ASSERT_TRUE(has(x.command("open peer=127.0.0.1:6000 ssrc=12 peer_ssrc=22"), "\"ok\":true"));
  for (uint16_t q = 0; q < 5; ++q) {
    x.io[0]->inject_datagram(kUdp, ep(6000), rtp_packet(q, 160u * q, 21));
    x.io[1]->inject_datagram(kUdp, ep(6000), rtp_packet(uint16_t(q + 100), 160u * q, 22));
    x.io[1]->inject_datagram(kUdp, ep(6000), rtp_packet(uint16_t(q + 100), 160u * q, 22));
  }
  x.run();
  const rtp::Session* a = x.instance(kOwner).session(1);  // slots are taken from the lowest
  const rtp::Session* b = x.instance(kOwner).session(2);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->sender.ssrc, 11u);
  EXPECT_EQ(a->rtp_in, 5u);
  EXPECT_EQ(b->rtp_in, 10u);
  EXPECT_EQ(b->jb.counts().duplicates, 4u);  // after probation, each second copy
  EXPECT_EQ(x.total(Rtp::kJbDuplicates), 4u);
  EXPECT_EQ(x.total(Rtp::kUnknownSource), 0u);
}

// A relay table with no configured pair: sessions opened at run time are routed on both
// workers (the owner broadcasts them), each side's packets reach the other unchanged from
// the table's port, and after close both sides are strangers again.
TEST(RtpRelaySessions, OpenRoutesBothWaysOnEveryWorkerCloseStops) {
  World x(2, rtp::Mode::relay);
  const std::string r = x.command("open peer=127.0.0.1:6000 peer_b=127.0.0.1:6002");
  ASSERT_TRUE(has(r, "\"ok\":true")) << r;
  EXPECT_TRUE(has(r, "\"peer_b\":\"127.0.0.1:6002\"")) << r;
  EXPECT_EQ(x.total(Rtp::kSessions), 1u);
  ASSERT_TRUE(has(x.command("open peer=127.0.0.1:7000 peer_b=127.0.0.2:7000"), "\"ok\":true"));
  for (unsigned w = 0; w < 2; ++w) {
    const auto a = rtp_packet(uint16_t(10 + w), 160, 0xa);
    const auto b = rtp_packet(uint16_t(20 + w), 320, 0xb);
    x.io[w]->inject_datagram(kUdp, ep(6000), a);
    x.io[w]->inject_datagram(kUdp, ep(6002), b);
    x.io[w]->inject_datagram(kUdp, {htonl(0x7f000002), htons(7000)}, a);
    x.run();
    const auto sent = x.io[w]->take_sent();
    ASSERT_EQ(sent.size(), 3u) << "worker " << w;
    EXPECT_EQ(sent[0].to, ep(6002));
    EXPECT_EQ(sent[0].bytes, a);
    EXPECT_EQ(sent[1].to, ep(6000));
    EXPECT_EQ(sent[1].bytes, b);
    EXPECT_EQ(sent[2].to, ep(7000));
    for (const auto& d : sent) EXPECT_EQ(d.sock, kUdp);
  }
  EXPECT_EQ(x.total(Rtp::kRelayed), 6u);
  const std::string l = x.command("list");
  EXPECT_TRUE(has(l, "\"mode\":\"relay\"")) << l;
  EXPECT_TRUE(has(l,
                  "{\"session\":1,\"configured\":false,\"peer\":\"127.0.0.1:6000\","
                  "\"peer_b\":\"127.0.0.1:6002\"}"))
      << l;
  // Closed by its side B: neither side is routed any more, on either worker.
  EXPECT_TRUE(has(x.command("close peer=127.0.0.1:6002"), "\"closed\":1"));
  for (unsigned w = 0; w < 2; ++w) {
    x.io[w]->inject_datagram(kUdp, ep(6000), rtp_packet(1, 1, 1));
    x.io[w]->inject_datagram(kUdp, ep(6002), rtp_packet(1, 1, 1));
  }
  x.run();
  EXPECT_TRUE(x.io[0]->take_sent().empty());
  EXPECT_TRUE(x.io[1]->take_sent().empty());
  EXPECT_EQ(x.total(Rtp::kUnknownSource), 4u);
  EXPECT_EQ(x.total(Rtp::kSessions), 1u);
  // The other session still forwards; a malformed packet from its side is not forwarded.
  x.io[0]->inject_datagram(kUdp, ep(7000), rtp_packet(5, 5, 5));
  x.io[0]->inject_datagram(kUdp, ep(7000), std::vector<uint8_t>(5, 0x80));
  x.run();
  const auto sent = x.io[0]->take_sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, (dp::Endpoint{htonl(0x7f000002), htons(7000)}));
  EXPECT_EQ(x.total(Rtp::kBadRtp), 1u);
}

TEST(RtpRelaySessions, BadCommandsAreErrors) {
  World x(2, rtp::Mode::relay);
  constexpr const char* kRefused = "\"ok\":false";
  // Then a side already in a session, either way round; a full table; close by a side.
  expect_replies(
      x, {{"open peer=127.0.0.1:6000", kRefused},
          {"open peer=127.0.0.1:6000 peer_b=127.0.0.1:6000", kRefused},
          {"open peer=127.0.0.1:6000 peer_b=127.0.0.1:0", kRefused},
          {"open peer=127.0.0.1:6000 peer_b=x", kRefused},
          {"open peer=127.0.0.1:6000 peer_b=127.0.0.1:6002 ssrc=4", kRefused},
          {"open peer=127.0.0.1:6000 peer_b=127.0.0.1:6002 peer_b=127.0.0.1:6004", kRefused},
          {"close peer=127.0.0.1:6000 peer_b=127.0.0.1:6002", kRefused},
          {"close peer=127.0.0.1:6000", kRefused},
          {"open peer=127.0.0.1:6000 peer_b=127.0.0.1:6002", "\"ok\":true"},
          {"open peer=127.0.0.1:6004 peer_b=127.0.0.1:6000", "duplicate"},
          {"open peer=127.0.0.1:6002 peer_b=127.0.0.1:6004", "duplicate"},
          {"open peer=127.0.0.1:6004 peer_b=127.0.0.1:6006", "\"ok\":true"},
          {"open peer=127.0.0.1:6008 peer_b=127.0.0.1:6010", "table full"},
          {"close peer=127.0.0.1:6000 peer_ssrc=3", "no peer_ssrc"},
          {"close peer=127.0.0.1:6000", "\"ok\":true"},
          {"open peer=127.0.0.1:6008 peer_b=127.0.0.1:6010", "\"ok\":true"}});
  EXPECT_EQ(x.total(Rtp::kSessions), 2u);
  // An endpoint table refuses relay sessions.
  World e(2);
  EXPECT_TRUE(has(e.command("open peer=127.0.0.1:6000 peer_b=127.0.0.1:6002"), "only a relay"));
}

}  // namespace
}  // namespace cw::svc
