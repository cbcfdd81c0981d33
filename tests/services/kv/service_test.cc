// The kv service over the fake backend: one worker (every command, pipelining, bad input,
// a slow writer, UDP, stats), two workers (requests forwarded to the key's owner, replies
// in request order, multi-gets across owners, a pipeline deeper than the window) and the
// warm restart files (saved at stop, re-homed for another worker count, a corrupt file);
// with cluster = true, requests from another node over the peer API (valid and malformed)
// and requests forwarded to the owner node (in order; the owner silent, then down).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "app/runtime/router.hh"
#include "app/runtime/worker.hh"
#include "app/services/kv/service.hh"
#include "app/services/peer/api.hh"
#include "app/services/peer/api_local.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/services/peer/api_pair.hh"
#include "tests/services/run_idle.hh"

namespace cw::svc {
namespace {

using Services = std::variant<Kv>;
using W = rt::Worker<dp::FakeWorker, Services>;
constexpr dp::SocketId kUdp = 0, kTcp = 1;

// n workers, each with its own fake backend; sockets 0 (UDP) and 1 (TCP) are kv's.
struct World {
  explicit World(unsigned n, kv::KvOptions o = {}, uint32_t bind_addr = 0x7f000001)
      : mail(n, 64, 4096), stats(n), svc(n) {
    opt = std::move(o);
    opt.partitions = std::make_shared<kv::Partitions>();
    for (unsigned w = 0; w < n; ++w) {
      io.push_back(std::make_unique<dp::FakeWorker>(w, iocfg, 2));
      const rt::SocketRef refs[2] = {{kUdp, dp::Transport::udp, true, true},
                                     {kTcp, dp::Transport::tcp, true, true}};
      const dp::Endpoint bound[2] = {{htonl(bind_addr), htons(11211)},
                                     {htonl(bind_addr), htons(11211)}};
      rt::ServiceCtx c{w, n, 64, 0, refs, {}, bound, {}};
      std::vector<Services> v;
      v.emplace_back(std::in_place_type<Kv>, c, opt);
      workers.push_back(std::make_unique<W>(*io[w], std::move(v), std::vector<uint16_t>{0, 0}, loop,
                                            64, stats[w], std::span(&svc[w], 1), mail));
    }
  }

  Kv& kv(unsigned w) { return std::get<Kv>(workers[w]->service(0)); }
  uint64_t counter(unsigned w, uint32_t i) { return workers[w]->counters().values(0)[i].get(); }

  // Runs every worker until nothing is delivered and no mail waits (bounded).
  void run() {
    ASSERT_TRUE(cw::testing::run_until_idle<W>(workers, stats, mail, 100000))
        << "workers did not go idle";
  }

  dp::ConnId open(unsigned w = 0) {
    const dp::ConnId c = io[w]->inject_open(kTcp, {htonl(0x7f000001), htons(40000)});
    run();
    return c;
  }
  // Sends s on c in segments of at most seg bytes (each delivered by its own loop), then
  // runs and returns everything c received since the last call.
  std::string send(dp::ConnId c, const std::string& s, unsigned w = 0, size_t seg = ~size_t{0}) {
    for (size_t off = 0; off < s.size() && io[w]->is_open(c); off += seg) {
      const size_t n = std::min(seg, s.size() - off);
      io[w]->inject_stream(c, {reinterpret_cast<const uint8_t*>(s.data()) + off, n});
      if (seg != ~size_t{0}) run();
    }
    run();
    return out(c, w);
  }
  std::string out(dp::ConnId c, unsigned w = 0) {
    const auto v = io[w]->take_stream_out(c);
    return {v.begin(), v.end()};
  }
  void stop() {
    for (auto& w : workers) w->stop_services();
  }

  kv::KvOptions opt;
  dp::IoConfig iocfg;
  rt::Mailboxes mail;
  rt::LoopConfig loop{.burst = 16, .busy_poll = true, .tail_small = 64, .tail_buffers = 64};
  std::vector<rt::WorkerStats> stats;
  std::vector<rt::ServiceStats> svc;
  std::vector<std::unique_ptr<dp::FakeWorker>> io;
  std::vector<std::unique_ptr<W>> workers;
};

unsigned owner(const std::string& key, unsigned n) {
  return rt::owner_of(rt::hash_key({reinterpret_cast<const uint8_t*>(key.data()), key.size()}), n);
}
// A key owned by worker w of n (the first "<prefix><i>" that is).
std::string key_of(unsigned w, unsigned n, const std::string& prefix, unsigned from = 0) {
  for (unsigned i = from;; ++i)
    if (owner(prefix + std::to_string(i), n) == w) return prefix + std::to_string(i);
}

TEST(KvOneWorker, TextCommands) {
  World x(1);
  const dp::ConnId c = x.open();
  EXPECT_EQ(x.send(c, "set a 5 0 3\r\nabc\r\n"), "STORED\r\n");
  EXPECT_EQ(x.send(c, "get a\r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(x.send(c, "get nope a nope\r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
  const std::string gets = x.send(c, "gets a\r\n");
  ASSERT_EQ(gets.rfind("VALUE a 5 3 ", 0), 0u) << gets;
  const std::string cas = gets.substr(12, gets.find("\r\n") - 12);
  EXPECT_EQ(x.send(c, "cas a 0 0 1 " + cas + "\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(x.send(c, "cas a 0 0 1 " + cas + "\r\ny\r\n"), "EXISTS\r\n");
  EXPECT_EQ(x.send(c, "cas zz 0 0 1 1\r\ny\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(x.send(c, "add a 0 0 1\r\nq\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(x.send(c, "replace b 0 0 1\r\nq\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(x.send(c, "append a 0 0 2\r\nyz\r\nprepend a 0 0 1\r\nw\r\nget a\r\n"),
            "STORED\r\nSTORED\r\nVALUE a 0 4\r\nwxyz\r\nEND\r\n");
  EXPECT_EQ(x.send(c, "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr a 1\r\nincr no 1\r\n"),
            "STORED\r\n15\r\n0\r\nCLIENT_ERROR cannot increment or decrement non-numeric "
            "value\r\nNOT_FOUND\r\n");
  EXPECT_EQ(x.send(c, "touch n 100\r\ntouch no 1\r\n"), "TOUCHED\r\nNOT_FOUND\r\n");
  EXPECT_EQ(x.send(c, "gat 100 n\r\n"), "VALUE n 0 2\r\n0 \r\nEND\r\n");
  EXPECT_EQ(x.send(c, "delete n\r\ndelete n\r\n"), "DELETED\r\nNOT_FOUND\r\n");
  EXPECT_EQ(x.send(c, "set q 0 0 1 noreply\r\nq\r\ndelete q noreply\r\nget q\r\n"), "END\r\n");
  EXPECT_EQ(x.send(c, "version\r\nverbosity 1\r\nverbosity 1 noreply\r\n"),
            "VERSION 1.6.18-corewire\r\nOK\r\n");
  EXPECT_EQ(x.send(c, "flush_all\r\nget a\r\nflush_all noreply\r\n"), "OK\r\nEND\r\n");
  EXPECT_EQ(x.send(c, "bogus\r\n"), "ERROR\r\n");
  EXPECT_EQ(x.counter(0, kv::kClientErrors), 1u);
  EXPECT_EQ(x.counter(0, kv::kCmdFlush), 2u);
  x.send(c, "quit\r\n");
  EXPECT_FALSE(x.io[0]->is_open(c));
}

TEST(KvOneWorker, MetaCommands) {
  World x(1);
  const dp::ConnId c = x.open();
  EXPECT_EQ(x.send(c, "ms k 2 F7 T0\r\nhi\r\n"), "HD\r\n");
  EXPECT_EQ(x.send(c, "mg k v f t k Oxyz s\r\n"), "VA 2 f7 t-1 kk Oxyz s2\r\nhi\r\n");
  EXPECT_EQ(x.send(c, "mg nope v\r\nmg nope v q\r\nmn\r\n"), "EN\r\nMN\r\n");
  EXPECT_EQ(x.send(c, "mg k\r\n"), "HD\r\n");
  EXPECT_EQ(x.send(c, "ms k 1 MA\r\n!\r\nmg k v\r\n"), "HD\r\nVA 3\r\nhi!\r\n");
  EXPECT_EQ(x.send(c, "ms k 1 ME\r\n!\r\nms new 1 MR\r\n!\r\n"), "NS\r\nNS\r\n");
  EXPECT_EQ(x.send(c, "ma cnt N0 J10 v\r\nma cnt v\r\nma cnt MD D4 v\r\n"),
            "VA 2\r\n10\r\nVA 2\r\n11\r\nVA 1\r\n7\r\n");
  EXPECT_EQ(x.send(c, "md k q\r\nmd k\r\nmn\r\n"), "NF\r\nMN\r\n");
  EXPECT_EQ(x.send(c, "ms b64 1 b\r\nx\r\n").substr(0, 2), "CL");  // "b64" is not base64 whole
  EXPECT_EQ(x.send(c, "ms Zm9v 1 b\r\nx\r\nmg Zm9v b v k\r\n"), "HD\r\nVA 1 kZm9v b\r\nx\r\n");
  EXPECT_EQ(x.send(c, "get foo\r\n"), "VALUE foo 0 1\r\nx\r\nEND\r\n");
}

TEST(KvOneWorker, MetaExplicitCas) {
  World x(1);
  const dp::ConnId c = x.open();
  EXPECT_EQ(x.send(c, "ms e 1 E12345 c\r\na\r\nmg e c v\r\n"), "HD c12345\r\nVA 1 c12345\r\na\r\n");
  EXPECT_EQ(x.send(c, "gets e\r\n"), "VALUE e 0 1 12345\r\na\r\nEND\r\n");
  EXPECT_EQ(x.send(c, "ms e 1 C1 E7\r\nb\r\nms e 1 C12345 E77 c\r\nb\r\n"), "EX\r\nHD c77\r\n");
  EXPECT_EQ(x.send(c, "md e I E99\r\nmg e c\r\n"), "HD\r\nHD c99 X W\r\n");
  EXPECT_EQ(x.send(c, "ma num N0 J5 E500 c v\r\nma num E501 c v\r\n"),
            "VA 1 c500\r\n5\r\nVA 1 c501\r\n6\r\n");
  EXPECT_EQ(x.send(c, "mg viv N30 E600 c\r\nmg viv E700 c\r\n"), "HD c600 W\r\nHD c600 Z\r\n");
  EXPECT_EQ(x.send(c, "ms e 1 Ex\r\nb\r\n"), "CLIENT_ERROR bad token in command line format\r\n");
}

TEST(KvOneWorker, PipelinedRequestsCutAtEveryByte) {
  const std::string req =
      "set k1 0 0 5\r\nhello\r\nget k1 k2\r\nset k2 3 0 0\r\n\r\nget k2 k1\r\nincr k1 1\r\n"
      "mg k1 v\r\ndelete k1\r\nget k1\r\n";
  const std::string want =
      "STORED\r\nVALUE k1 0 5\r\nhello\r\nEND\r\nSTORED\r\nVALUE k2 3 0\r\n\r\nVALUE k1 0 "
      "5\r\nhello\r\nEND\r\nCLIENT_ERROR cannot increment or decrement non-numeric "
      "value\r\nVA 5\r\nhello\r\nDELETED\r\nEND\r\n";
  for (size_t seg : {size_t{1}, size_t{2}, size_t{7}, req.size()}) {
    World x(1);
    const dp::ConnId c = x.open();
    EXPECT_EQ(x.send(c, req, 0, seg), want) << "segments of " << seg;
  }
}

TEST(KvOneWorker, BadInputAnsweredOrClosedAndCounted) {
  World x(1);
  dp::ConnId c = x.open();
  // Wrong data length: the block does not end in \r\n.
  EXPECT_EQ(x.send(c, "set a 0 0 2\r\nabcd\r\nget a\r\n"),
            "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n");
  // A value over item_size_max is refused and swallowed as it arrives.
  const std::string big(kv::kDefaultItemSizeMax + 10, 'v');
  EXPECT_EQ(
      x.send(c, "set big 0 0 " + std::to_string(big.size()) + "\r\n" + big + "\r\nget big\r\n", 0,
             64 * 1024),
      "SERVER_ERROR object too large for cache\r\nEND\r\n");
  EXPECT_EQ(x.send(c, "\x01\x02\x03garbage\r\n"), "ERROR\r\n");
  EXPECT_TRUE(x.io[0]->is_open(c));
  // An HTTP request closes without a reply.
  EXPECT_EQ(x.send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "");
  EXPECT_FALSE(x.io[0]->is_open(c));
  // A line without a newline past 2048 bytes closes.
  c = x.open();
  EXPECT_EQ(x.send(c, std::string(3000, 'a')), "");
  EXPECT_FALSE(x.io[0]->is_open(c));
  // A TLS ClientHello: binary, no newline soon: closed or answered ERROR, never stuck.
  c = x.open();
  std::string hello = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
  hello += std::string(600, '\x5a');
  x.send(c, hello);
  x.send(c, std::string(2000, '\x00'));
  EXPECT_FALSE(x.io[0]->is_open(c));
  EXPECT_GE(x.counter(0, kv::kProtocolCloses), 3u);
  EXPECT_GE(x.counter(0, kv::kClientErrors), 3u);
}

TEST(KvOneWorker, SlowWriterOneByteAtATimeHoldsOneRequest) {
  World x(1);
  const dp::ConnId c = x.open();
  const std::string value(3000, 'z');
  const std::string req = "set slow 0 0 3000\r\n" + value + "\r\nget slow\r\n";
  EXPECT_EQ(x.send(c, req, 0, 1), "STORED\r\nVALUE slow 0 3000\r\n" + value + "\r\nEND\r\n");
  // The tail grew to the request's need at once and went back when it was consumed.
  EXPECT_EQ(x.workers[0]->tails().bytes_in_use(), 0u);
}

TEST(KvOneWorker, SlowReaderPausesUntilOutputDrains) {
  World x(1);
  const dp::ConnId c = x.open();
  const std::string value(200 * 1024, 'r');
  x.send(c, "set big 0 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n");
  std::string gets;
  for (int i = 0; i < 12; ++i) gets += "get big\r\n";
  x.io[0]->inject_stream(c, {reinterpret_cast<const uint8_t*>(gets.data()), gets.size()});
  x.run();  // the peer reads nothing: about kSlowReaderBytes are queued, then it pauses
  EXPECT_TRUE(x.io[0]->is_paused(c));
  EXPECT_EQ(x.counter(0, kv::kSlowReaderPauses), 1u);
  std::string got;
  for (int i = 0; i < 100 && got.size() < 12 * (value.size() + 30); ++i) {
    got += x.out(c);
    x.run();
  }
  size_t n = 0;
  for (size_t p = got.find("END\r\n"); p != std::string::npos; p = got.find("END\r\n", p + 1)) ++n;
  EXPECT_EQ(n, 12u);
}

TEST(KvOneWorker, StatsHaveMemcachedNames) {
  World x(1);
  const dp::ConnId c = x.open();
  x.send(c, "set a 0 0 1\r\n1\r\nget a\r\nget b\r\n");
  const std::string s = x.send(c, "stats\r\n");
  EXPECT_NE(s.find("STAT curr_items 1\r\n"), std::string::npos) << s;
  EXPECT_NE(s.find("STAT get_hits 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT get_misses 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT cmd_set 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT curr_connections 1\r\n"), std::string::npos);
  EXPECT_EQ(s.substr(s.size() - 5), "END\r\n");
  EXPECT_NE(x.send(c, "stats settings\r\n").find("STAT item_size_max 1048576\r\n"),
            std::string::npos);
  EXPECT_EQ(x.send(c, "stats nonsense\r\n"), "ERROR\r\n");
  x.stop();  // the housekeeping copy: declared counters carry the store's figures
  EXPECT_EQ(x.counter(0, kv::kCurrItems), 1u);
  EXPECT_EQ(x.counter(0, kv::kGetHits), 1u);
}

// stats items / slabs / conns: per slab class, summed over the partitions (two workers),
// and the asking worker's connections.
TEST(KvCrossCore, StatsItemsSlabsConns) {
  World x(2);
  const dp::ConnId c = x.open(0), other = x.open(0);
  std::string req;
  for (int i = 0; i < 20; ++i) req += "set small" + std::to_string(i) + " 0 0 1\r\nx\r\n";
  req += "set big 0 0 5000\r\n" + std::string(5000, 'b') + "\r\n";
  x.send(c, req);
  const std::string items = x.send(c, "stats items\r\n");
  // The 20 small items share one class, the big one is alone in another.
  EXPECT_NE(items.find(":number 20\r\n"), std::string::npos) << items;
  EXPECT_NE(items.find(":number 1\r\n"), std::string::npos) << items;
  EXPECT_NE(items.find("STAT items:1:number 20\r\n"), std::string::npos) << items;
  EXPECT_NE(items.find(":evicted 0\r\n"), std::string::npos) << items;
  EXPECT_EQ(items.substr(items.size() - 5), "END\r\n");
  const std::string slabs = x.send(c, "stats slabs\r\n");
  EXPECT_NE(slabs.find("STAT 1:used_chunks 20\r\n"), std::string::npos) << slabs;
  EXPECT_NE(slabs.find("STAT 1:total_pages 2\r\n"), std::string::npos) << slabs;  // 2 partitions
  EXPECT_NE(slabs.find("STAT active_slabs 2\r\n"), std::string::npos) << slabs;
  EXPECT_NE(slabs.find("STAT total_malloced 3145728\r\n"), std::string::npos) << slabs;
  const std::string conns = x.send(c, "stats conns\r\n");
  for (dp::ConnId id : {c, other}) {
    const std::string p = "STAT " + std::to_string(id) + ":";
    EXPECT_NE(conns.find(p + "addr tcp:127.0.0.1:40000\r\n"), std::string::npos) << conns;
    EXPECT_NE(conns.find(p + "state conn_parse_cmd\r\n"), std::string::npos) << conns;
    EXPECT_NE(conns.find(p + "secs_since_last_cmd "), std::string::npos) << conns;
  }
  EXPECT_EQ(conns.substr(conns.size() - 5), "END\r\n");
  x.send(c, "flush_all\r\n");
  x.send(c, "get big small1\r\n");  // the flushed items are reclaimed as they are read
  EXPECT_EQ(x.send(c, "stats items\r\n").find(":number 1\r\n"), std::string::npos);
}

// A stats reply larger than its buffer still ends in END: the lines that do not fit are
// left out.
TEST(KvOneWorker, StatsWriterKeepsRoomForEnd) {
  char buf[40];
  kv::StatsWriter w(buf);
  w.stat("first", 1);                      // 14 bytes
  w.stat("second_is_too_long_to_fit", 2);  // 34: left out
  w.stat("third", 3);                      // 14 more, + END = 33
  const size_t n = w.end();
  EXPECT_EQ(std::string(buf, n), "STAT first 1\r\nSTAT third 3\r\nEND\r\n");
}

// --- UDP ---

std::vector<uint8_t> udp_req(uint16_t id, const std::string& s) {
  std::vector<uint8_t> d(8 + s.size());
  kv::proto::encode_udp_header(d.data(), {id, 0, 1, 0});
  std::memcpy(d.data() + 8, s.data(), s.size());
  return d;
}

TEST(KvUdp, RequestsAnsweredInFramesSplitAt1400) {
  World x(1);
  const dp::Endpoint peer{htonl(0x7f000001), htons(5000)};
  x.io[0]->inject_datagram(kUdp, peer,
                           udp_req(7, "set u 0 0 3000\r\n" + std::string(3000, 'u') + "\r\n"));
  x.run();
  auto sent = x.io[0]->take_sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::string(sent[0].bytes.begin() + 8, sent[0].bytes.end()), "STORED\r\n");
  x.io[0]->inject_datagram(kUdp, peer, udp_req(9, "get u\r\n"));
  x.run();
  sent = x.io[0]->take_sent();
  ASSERT_EQ(sent.size(), 3u);  // 3000 + header + END in 1392-byte slices
  std::string all;
  for (uint16_t i = 0; i < sent.size(); ++i) {
    const auto& b = sent[i].bytes;
    ASSERT_LE(b.size(), 1400u);
    EXPECT_EQ(b[0] << 8 | b[1], 9);
    EXPECT_EQ(b[2] << 8 | b[3], i);
    EXPECT_EQ(b[4] << 8 | b[5], 3);
    all.append(b.begin() + 8, b.end());
  }
  EXPECT_EQ(all, "VALUE u 0 3000\r\n" + std::string(3000, 'u') + "\r\nEND\r\n");
  x.io[0]->inject_datagram(kUdp, peer, std::vector<uint8_t>{0, 1, 0, 0});  // short frame
  x.run();
  EXPECT_TRUE(x.io[0]->take_sent().empty());
  EXPECT_EQ(x.counter(0, kv::kUdpMalformed), 1u);
}

TEST(KvUdp, UnverifiedSourceCappedAtReplyFactor) {
  kv::KvOptions o;
  o.udp_public = true;
  World x(1, o, 0);  // bound to 0.0.0.0: public
  const dp::Endpoint far{htonl(0x0a000001), htons(5000)};
  const dp::Endpoint local{htonl(0x7f000001), htons(5000)};
  x.io[0]->inject_datagram(kUdp, local,
                           udp_req(1, "set a 0 0 500\r\n" + std::string(500, 'a') + "\r\n"));
  x.run();
  x.io[0]->take_sent();
  x.io[0]->inject_datagram(kUdp, far, udp_req(2, "get a\r\n"));  // 15 bytes in, ~530 out
  x.io[0]->inject_datagram(kUdp, far, udp_req(3, "version\r\n"));
  x.run();
  const auto sent = x.io[0]->take_sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::string(sent[0].bytes.begin() + 8, sent[0].bytes.end()),
            "VERSION 1.6.18-corewire\r\n");
  EXPECT_EQ(x.counter(0, kv::kUdpCapped), 1u);
}

// A source in udp_trusted, or with an open or recent TCP session on this worker, has shown
// it receives: its replies are not capped. Others still are.
TEST(KvUdp, AllowListAndTcpSessionsLiftTheCap) {
  kv::KvOptions o;
  o.udp_public = true;
  o.udp_trusted = {*kv::parse_cidr("192.0.2.0/24")};
  World x(1, o, 0);
  const dp::Endpoint listed{htonl(0xc0000207), htons(5000)};   // 192.0.2.7
  const dp::Endpoint session{htonl(0x0a000002), htons(5000)};  // 10.0.0.2
  const dp::Endpoint other{htonl(0x0a000003), htons(5000)};    // 10.0.0.3
  x.io[0]->inject_datagram(kUdp, {htonl(0x7f000001), htons(5000)},
                           udp_req(1, "set a 0 0 3000\r\n" + std::string(3000, 'a') + "\r\n"));
  x.run();
  x.io[0]->take_sent();
  auto gets = [&](const dp::Endpoint& from) {
    x.io[0]->inject_datagram(kUdp, from, udp_req(2, "get a\r\n"));
    x.run();
    return x.io[0]->take_sent().size();
  };
  EXPECT_EQ(gets(listed), 3u);  // the whole reply, three datagrams
  EXPECT_EQ(gets(session), 0u);
  EXPECT_EQ(x.counter(0, kv::kUdpCapped), 1u);
  const dp::ConnId c = x.io[0]->inject_open(kTcp, {session.addr_be, htons(40001)});
  x.run();
  EXPECT_EQ(gets(session), 3u);  // an open session proves it
  EXPECT_EQ(gets(other), 0u);
  x.io[0]->inject_peer_close(c);
  x.run();
  EXPECT_EQ(gets(session), 3u);  // and for udp_tcp_trust seconds after it ended
  EXPECT_EQ(x.counter(0, kv::kUdpCapped), 2u);
  EXPECT_EQ(x.counter(0, kv::kTcpPeersFull), 0u);
}

TEST(KvUdp, TcpTrustZeroForgetsClosedSessions) {
  kv::KvOptions o;
  o.udp_public = true;
  o.udp_tcp_trust_s = 0;
  World x(1, o, 0);
  const dp::Endpoint far{htonl(0x0a000002), htons(5000)};
  x.io[0]->inject_datagram(kUdp, {htonl(0x7f000001), htons(5000)},
                           udp_req(1, "set a 0 0 500\r\n" + std::string(500, 'a') + "\r\n"));
  const dp::ConnId c = x.io[0]->inject_open(kTcp, {far.addr_be, htons(40001)});
  x.run();
  x.io[0]->take_sent();
  x.io[0]->inject_datagram(kUdp, far, udp_req(2, "get a\r\n"));
  x.run();
  EXPECT_EQ(x.io[0]->take_sent().size(), 1u);
  x.io[0]->inject_peer_close(c);
  x.run();
  x.io[0]->inject_datagram(kUdp, far, udp_req(3, "get a\r\n"));
  x.run();
  EXPECT_TRUE(x.io[0]->take_sent().empty());
  EXPECT_EQ(x.counter(0, kv::kUdpCapped), 1u);
}

TEST(KvUdp, OffOnPublicAddressUnlessEnabled) {
  World x(1, {}, 0);
  x.io[0]->inject_datagram(kUdp, {htonl(0x7f000001), htons(5000)}, udp_req(1, "version\r\n"));
  x.run();
  EXPECT_TRUE(x.io[0]->take_sent().empty());
  EXPECT_EQ(x.counter(0, kv::kUdpRefused), 1u);
}

// --- two workers ---

TEST(KvCrossCore, PipelinedKeysOfBothOwnersRepliesInOrderNothingLost) {
  kv::KvOptions o;
  o.pipeline_depth = 8;  // deeper pipelines than the window: connections pause and resume
  World x(2, o);
  const dp::ConnId c0 = x.open(0), c1 = x.open(1);
  for (unsigned round = 0; round < 3; ++round) {
    for (unsigned w = 0; w < 2; ++w) {
      const dp::ConnId c = w ? c1 : c0;
      std::string req, want;
      for (unsigned i = 0; i < 100; ++i) {
        const std::string k =
            "w" + std::to_string(w) + "r" + std::to_string(round) + "k" + std::to_string(i);
        const std::string v = "v" + std::to_string(i * 7 + round);
        req += "set " + k + " " + std::to_string(i) + " 0 " + std::to_string(v.size()) + "\r\n" +
               v + "\r\n";
        want += "STORED\r\n";
        req += "get " + k + "\r\n";
        want += "VALUE " + k + " " + std::to_string(i) + " " + std::to_string(v.size()) + "\r\n" +
                v + "\r\nEND\r\n";
        req += "incr " + k + " 1\r\n";
        want += "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
      }
      EXPECT_EQ(x.send(c, req, w, 997), want) << "worker " << w << " round " << round;
    }
  }
  for (unsigned w = 0; w < 2; ++w) {
    EXPECT_GT(x.counter(w, kv::kForwarded), 100u);
    EXPECT_GT(x.counter(w, kv::kServedForOthers), 100u);
    EXPECT_EQ(x.counter(w, kv::kForwardFailed), 0u);
    EXPECT_GT(x.counter(w, kv::kPipelinePauses), 0u);
    EXPECT_GT(x.kv(w).order().stats().held.get(), 0u);
    EXPECT_EQ(x.stats[w].mail_dropped.get(), 0u);
    EXPECT_EQ(x.kv(w).order().blocks_free(), x.kv(w).order().blocks_free());
  }
  // Each key lives on its owner only.
  uint64_t items = 0;
  for (unsigned w = 0; w < 2; ++w) items += x.kv(w).store().stats().curr_items.get();
  EXPECT_EQ(items, 600u);
}

TEST(KvCrossCore, StatsAndClosingRequestsWaitForTheRequestsBeforeThem) {
  World x(2);
  dp::ConnId c = x.open(0);
  const std::string k = key_of(1, 2, "far");  // answered by worker 1, by mail
  const std::string st = x.send(c, "set " + k + " 0 0 1\r\nv\r\nstats\r\n");
  EXPECT_EQ(st.rfind("STORED\r\nSTAT pid", 0), 0u) << st;
  EXPECT_NE(st.find("STAT cmd_set 1\r\n"), std::string::npos) << st;
  x.send(c, "quit\r\n");
  c = x.open(0);
  // In one segment: the set's reply is still on its way when the HTTP line asks to close.
  EXPECT_EQ(x.send(c, "set " + k + " 0 0 1\r\nv\r\nbogus\r\nGET / HTTP/1.1\r\n"),
            "STORED\r\nERROR\r\n");
  EXPECT_FALSE(x.io[0]->is_open(c));
  EXPECT_EQ(x.counter(0, kv::kProtocolCloses), 1u);
}

TEST(KvCrossCore, MultiGetAcrossOwnersLongerThanTheWindow) {
  kv::KvOptions o;
  o.pipeline_depth = 4;
  World x(2, o);
  const dp::ConnId c = x.open(0);
  std::string line = "gets", want_keys;
  for (unsigned i = 0; i < 40; ++i) {
    const std::string k = "m" + std::to_string(i);
    if (i % 3 != 0)
      x.send(c, "set " + k + " 0 0 " + std::to_string(k.size()) + "\r\n" + k + "\r\n");
    line += " " + k;
  }
  line += " m-missing\r\n";
  const std::string got = x.send(c, line + "mn\r\n");
  std::string order;
  for (size_t p = got.find("VALUE "); p != std::string::npos; p = got.find("VALUE ", p + 1))
    order += got.substr(p + 6, got.find(' ', p + 6) - p - 6) + ",";
  std::string want;
  for (unsigned i = 0; i < 40; ++i)
    if (i % 3 != 0) want += "m" + std::to_string(i) + ",";
  EXPECT_EQ(order, want);
  EXPECT_EQ(got.substr(got.size() - 9), "END\r\nMN\r\n");
  EXPECT_GT(x.counter(0, kv::kForwarded), 0u);
}

TEST(KvCrossCore, FlushAllReachesEveryPartitionAndStatsSumThem) {
  World x(2);
  const dp::ConnId c = x.open(0);
  const std::string a = key_of(0, 2, "f"), b = key_of(1, 2, "f");
  x.send(c, "set " + a + " 0 0 1\r\n1\r\nset " + b + " 0 0 1\r\n2\r\n");
  EXPECT_NE(x.send(c, "stats\r\n").find("STAT curr_items 2\r\n"), std::string::npos);
  EXPECT_EQ(x.send(c, "flush_all\r\nget " + a + " " + b + "\r\n"), "OK\r\nEND\r\n");
}

TEST(KvCrossCore, UdpRequestRunsOnItsOwner) {
  World x(2);
  const std::string k1 = key_of(1, 2, "u");
  const dp::Endpoint peer{htonl(0x7f000001), htons(5000)};
  x.io[0]->inject_datagram(kUdp, peer, udp_req(4, "set " + k1 + " 0 0 1\r\nz\r\n"));
  x.run();
  EXPECT_TRUE(x.io[0]->take_sent().empty());
  auto sent = x.io[1]->take_sent();  // worker 1 owns the key and answers
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::string(sent[0].bytes.begin() + 8, sent[0].bytes.end()), "STORED\r\n");
  const std::string k0 = key_of(0, 2, "u");
  x.io[0]->inject_datagram(kUdp, peer, udp_req(5, "get " + k0 + " " + k1 + "\r\n"));
  x.run();
  sent = x.io[0]->take_sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::string(sent[0].bytes.begin() + 8, sent[0].bytes.end()),
            "SERVER_ERROR keys of one UDP request span workers\r\n");
}

// --- warm restart ---

struct TempDir {
  TempDir() {
    char t[] = "/tmp/kv_warm_XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

TEST(KvWarmRestart, SavedAtStopLoadedAgainAndRehomedForAnotherWorkerCount) {
  TempDir d;
  kv::KvOptions o;
  o.warm_restart_file = d.path + "/kv";
  {
    World x(2, o);
    const dp::ConnId c = x.open(0);
    std::string req;
    for (unsigned i = 0; i < 500; ++i)
      req += "set key" + std::to_string(i) + " " + std::to_string(i) + " 0 4\r\nv" +
             std::to_string(1000 + i).substr(1) + "\r\n";
    x.send(c, req);
    x.stop();
    EXPECT_TRUE(std::filesystem::exists(o.warm_restart_file + ".0"));
    EXPECT_TRUE(std::filesystem::exists(o.warm_restart_file + ".1"));
  }
  for (unsigned n : {3u, 1u, 2u}) {
    SCOPED_TRACE(std::to_string(n) + " workers");
    World x(n, o);
    uint64_t items = 0;
    for (unsigned w = 0; w < n; ++w) items += x.kv(w).store().stats().curr_items.get();
    EXPECT_EQ(items, 500u);
    const dp::ConnId c = x.open(0);
    std::string req, want;
    for (unsigned i = 0; i < 500; i += 7) {
      req += "get key" + std::to_string(i) + "\r\n";
      want += "VALUE key" + std::to_string(i) + " " + std::to_string(i) + " 4\r\nv" +
              std::to_string(1000 + i).substr(1) + "\r\nEND\r\n";
    }
    EXPECT_EQ(x.send(c, req), want);
    x.stop();  // saves n files; worker 0 removes the others
    EXPECT_EQ(std::filesystem::exists(o.warm_restart_file + ".2"), n == 3);
  }
}

TEST(KvWarmRestart, CorruptFileStartsEmpty) {
  TempDir d;
  kv::KvOptions o;
  o.warm_restart_file = d.path + "/kv";
  {
    World x(1, o);
    const dp::ConnId c = x.open(0);
    x.send(c, "set a 0 0 1\r\n1\r\n");
    x.stop();
  }
  {  // flip a byte of the records
    FILE* f = std::fopen((o.warm_restart_file + ".0").c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 70, SEEK_SET);
    std::fputc(0x55, f);
    std::fclose(f);
  }
  World x(1, o);
  EXPECT_EQ(x.kv(0).store().stats().curr_items.get(), 0u);
  const dp::ConnId c = x.open(0);
  EXPECT_EQ(x.send(c, "get a\r\n"), "END\r\n");
  {  // a foreign file
    FILE* f = std::fopen((o.warm_restart_file + ".0").c_str(), "wb");
    std::fputs("not a store file at all, but long enough to have a header.........", f);
    std::fclose(f);
  }
  World y(1, o);
  EXPECT_EQ(y.kv(0).store().stats().curr_items.get(), 0u);
}

// kv with cluster = true answers another node's requests on the peer API: this kv is node B
// (its worker's Api over endpoint b), the test is node A with a raw Api over endpoint a.
// Valid requests run on B's store; malformed ones are answered SERVER_ERROR and counted.
TEST(KvCluster, ServesPeersAndCountsMalformedRequests) {
  using namespace peer::test;
  NEED_CERTS();
  ApiPair p;
  ASSERT_TRUE(p.a->is_open(0));
  peer::Api& aa = *p.aa;
  ASSERT_TRUE(aa.open_channel(Kv::kPeerChannel));
  peer::local_apis()[0] = p.ab.get();
  kv::KvOptions o;
  o.cluster = true;
  World x(1, o);
  auto round = [&] {
    p.feed();
    x.run();  // B's kv takes the requests and answers
    p.net->round();
  };
  const std::string bad = "SERVER_ERROR forwarded request unreadable\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\x01set k 0 0 1\r\nv\r\n", "STORED\r\n"},
      {"\x02get k\r\n", "VALUE k 0 1\r\nv\r\n"},  // a one-key get: no END
      {"\x01incr k 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
      {"", bad},                                // no kind
      {"\x09get k\r\n", bad},                   // an unknown kind
      {"\x01get k\r\n", bad},                   // keyed kind, not a keyed request
      {"\x02set k 0 0 1\r\nv\r\n", bad},        // get kind, not a get
      {"\x02get k j\r\n", bad},                 // two keys
      {"\x01set k 0 0 5\r\nv\r\n", bad},        // the data cut short
      {"\x01\xff\xfe not a command\r\n", bad},  // garbage
      {"\x01flush_all\r\n", bad},               // not keyed
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string& q = cases[i].first;
    ASSERT_EQ(aa.request(0, Kv::kPeerChannel,
                         {reinterpret_cast<const uint8_t*>(q.data()), q.size()}, i, p.now()),
              peer::Send::ok);
  }
  std::vector<std::string> got(cases.size());
  size_t n = 0;
  for (int r = 0; r < 200 && n < cases.size(); ++r) {
    round();
    aa.poll(Kv::kPeerChannel, [&](const peer::ApiMessage& m) {
      ASSERT_EQ(m.event, peer::Event::response);
      ASSERT_LT(m.cookie, cases.size());
      got[m.cookie].assign(m.body.begin(), m.body.end());
      ++n;
    });
  }
  ASSERT_EQ(n, cases.size());
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(got[i], cases[i].second) << i;
  EXPECT_EQ(x.counter(0, kv::kClusterServed), cases.size());
  EXPECT_EQ(x.counter(0, kv::kClusterBad), 8u);
  const dp::ConnId c = x.open();  // B's own client sees what A stored
  EXPECT_EQ(x.send(c, "get k\r\n"), "VALUE k 0 1\r\nv\r\nEND\r\n");
  x.stop();
  peer::local_apis()[0] = nullptr;
}

// A kv with cluster = true forwards what another node owns: this kv is node A (its worker's
// Api over endpoint a, B as its one peer), the test plays node B with a raw Api over
// endpoint b. Replies come back in request order, local ones between; when B stops answering
// a get misses and a set fails; once B's session is down, A owns B's keys.
TEST(KvCluster, ForwardsToTheOwnerNodeInRequestOrder) {
  using namespace peer::test;
  NEED_CERTS();
  peer::ApiConfig ca;
  ca.timeout_ns = 200'000'000;
  ca.self = {0x0100007f, 0x3333};  // A's peer address (not dialed here)
  ca.peers = {kB};
  // On the worker's clock: the kv stamps its requests with it.
  ApiPair p(ca, ApiPair::config(10'000'000'000), rt::now_ns());
  ASSERT_TRUE(p.a->is_open(0));
  peer::QuicEndpoint &a = *p.a, &b = *p.b;
  peer::Api &aa = *p.aa, &ab = *p.ab;
  ASSERT_TRUE(ab.open_channel(Kv::kPeerChannel));
  peer::local_apis()[0] = &aa;
  kv::KvOptions o;
  o.cluster = true;
  World x(1, o);
  // A key B owns and one A owns.
  const std::array<uint64_t, 2> ids = {kv::node_id(ca.self), kv::node_id(kB)};
  const std::array<uint8_t, 2> up = {1, 1};
  auto owner_of = [&](const std::string& k) {
    return kv::rendezvous(rt::hash_key({reinterpret_cast<const uint8_t*>(k.data()), k.size()}), ids,
                          up);
  };
  std::string kb, ka;
  for (int i = 0; kb.empty() || ka.empty(); ++i) {
    const std::string k = "k" + std::to_string(i);
    (owner_of(k) == 1 ? kb : ka) = k;
  }
  // B's service: answers a keyed request STORED and a get with a value, when answering.
  std::vector<std::string> at_b;
  bool answering = true;
  std::string out;
  const dp::ConnId c = x.open();
  auto rounds = [&](int n, uint64_t step_ns) {
    for (int r = 0; r < n; ++r) {
      p.feed();
      if (answering)
        ab.poll(Kv::kPeerChannel, [&](const peer::ApiMessage& m) {
          at_b.emplace_back(m.body.begin(), m.body.end());
          const std::string rep =
              m.body[0] == Kv::kPeerKeyed ? "STORED\r\n" : "VALUE " + kb + " 0 1\r\nx\r\n";
          ab.respond(m.to, Kv::kPeerChannel,
                     {reinterpret_cast<const uint8_t*>(rep.data()), rep.size()});
        });
      x.run();
      out += x.out(c);
      p.net->round(step_ns);
    }
  };
  out = x.send(
      c, "set " + kb + " 0 0 1\r\nx\r\nset " + ka + " 0 0 1\r\ny\r\nget " + kb + " " + ka + "\r\n");
  rounds(50, 200'000);
  EXPECT_EQ(
      out, "STORED\r\nSTORED\r\nVALUE " + kb + " 0 1\r\nx\r\nVALUE " + ka + " 0 1\r\ny\r\nEND\r\n");
  ASSERT_EQ(at_b.size(), 2u);
  EXPECT_EQ(at_b[0], "\x01set " + kb + " 0 0 1\r\nx\r\n");
  EXPECT_EQ(at_b[1], "\x02get " + kb + "\r\n");
  EXPECT_EQ(x.counter(0, kv::kClusterForwarded), 2u);

  // B stops answering: after request_timeout the get misses and the set fails, in order.
  answering = false;
  out = x.send(c, "get " + kb + "\r\nset " + kb + " 0 0 1\r\nz\r\n");
  EXPECT_EQ(out, "");
  rounds(300, 1'000'000);
  EXPECT_EQ(out, "END\r\nSERVER_ERROR owner node unavailable\r\n");
  EXPECT_EQ(x.counter(0, kv::kClusterTimeouts), 2u);

  // B's session goes down: A owns B's keys now (a miss, then stored here).
  for (uint32_t s = b.client_slots(); s < b.slots(); ++s)
    if (b.is_open(s)) b.close(s, 0);
  rounds(50, 1'000'000);
  ASSERT_FALSE(a.is_open(0));
  out = x.send(c, "get " + kb + "\r\nset " + kb + " 0 0 1\r\nw\r\nget " + kb + "\r\n");
  EXPECT_EQ(out, "END\r\nSTORED\r\nVALUE " + kb + " 0 1\r\nw\r\nEND\r\n");
  EXPECT_EQ(x.counter(0, kv::kClusterForwarded), 4u);
  x.stop();
  peer::local_apis()[0] = nullptr;
}

}  // namespace
}  // namespace cw::svc
