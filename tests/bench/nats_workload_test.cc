// corewire-bench's NATS workload: the codec (requests written, the server's replies parsed
// whole, split at every byte and one byte at a time, bad input refused), and the NatsClient
// over the fake backend with a hand-driven clock (handshake, closed-loop acknowledgements,
// open-loop schedule and stamps, latency, fan-out accounting, server PING, -ERR, garbage).
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/corewire_bench/nats_client.hh"
#include "bench/corewire_bench/nats_codec.hh"
#include "bench/corewire_bench/report.hh"
#include "tests/bench/client_fixture.hh"

namespace cw::bench {
namespace {

constexpr uint64_t kMs = 1'000'000;

std::string str(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A payload of n bytes starting with a stamp.
std::string payload(uint32_t n, nats::Stamp st) {
  std::string p(n, 'x');
  nats::put_stamp(reinterpret_cast<uint8_t*>(p.data()), st);
  return p;
}
std::string msg(std::string_view subject, uint32_t sid, const std::string& pay) {
  return "MSG " + std::string(subject) + " " + std::to_string(sid) + " " +
         std::to_string(pay.size()) + "\r\n" + pay + "\r\n";
}

// What one parse of a stream gave: the kinds in order, and each msg's sid/size/stamp.
struct Parsed {
  std::vector<nats::Ev> kinds;
  std::vector<uint32_t> sids, sizes, heads;
  std::vector<uint64_t> stamps;
  bool operator==(const Parsed&) const = default;
};

// Feeds `in` in pieces of the given sizes the way the runtime does: unconsumed bytes stay
// in front of the next piece. Stops at bad.
Parsed feed(const std::string& in, const std::vector<size_t>& cuts) {
  Parsed out;
  nats::RxState st;
  std::string buf;
  size_t pos = 0;
  auto pieces = cuts;
  pieces.push_back(in.size());
  for (size_t c : pieces) {
    if (c < pos) continue;
    buf += in.substr(pos, c - pos);
    pos = c;
    size_t used = 0;
    for (;;) {
      const nats::Event e = nats::next(st, bytes(buf).subspan(used));
      used += e.consumed;
      if (e.kind == nats::Ev::need_more) break;
      out.kinds.push_back(e.kind);
      if (e.kind == nats::Ev::bad) return out;
      if (e.kind == nats::Ev::msg) {
        out.sids.push_back(st.sid);
        out.sizes.push_back(st.total);
        out.heads.push_back(st.head_have);
        if (st.head_have == nats::kStampSize)
          out.stamps.push_back(nats::get_stamp(st.head).intended_ns);
      }
    }
    buf.erase(0, used);
  }
  return out;
}

TEST(NatsCodec, EncodersWriteTheProtocolAndTheirSizes) {
  char b[512];
  uint32_t n = nats::encode_connect(b, "cb");
  EXPECT_EQ(n, nats::connect_size("cb"));
  const std::string c(b, n);
  EXPECT_EQ(c.rfind("CONNECT {", 0), 0u);
  EXPECT_NE(c.find("\"verbose\":false"), std::string::npos);
  EXPECT_NE(c.find("\"name\":\"cb\"}\r\n"), std::string::npos);
  n = nats::encode_sub(b, "foo.bar", "", 12);
  EXPECT_EQ(std::string(b, n), "SUB foo.bar 12\r\n");
  EXPECT_EQ(n, nats::sub_size("foo.bar", "", 12));
  n = nats::encode_sub(b, "foo", "workers", 7);
  EXPECT_EQ(std::string(b, n), "SUB foo workers 7\r\n");
  EXPECT_EQ(n, nats::sub_size("foo", "workers", 7));
  n = nats::encode_pub_line(b, "foo", 1024);
  EXPECT_EQ(std::string(b, n), "PUB foo 1024\r\n");
  EXPECT_EQ(n, nats::pub_line_size("foo", 1024));
  EXPECT_EQ(nats::pub_size("foo", 1024), n + 1024u + 2u);
}

TEST(NatsCodec, StampRoundTrips) {
  uint8_t b[nats::kStampSize];
  const nats::Stamp s{123456789012345ull, 65535, nats::kSeqMask, true};
  nats::put_stamp(b, s);
  const nats::Stamp r = nats::get_stamp(b);
  EXPECT_EQ(r.intended_ns, s.intended_ns);
  EXPECT_EQ(r.pub, s.pub);
  EXPECT_EQ(r.seq, s.seq);
  EXPECT_TRUE(r.measured);
  nats::put_stamp(b, {7, 3, 9, false});
  EXPECT_FALSE(nats::get_stamp(b).measured);
  EXPECT_EQ(nats::get_stamp(b).pub, 3u);
  EXPECT_EQ(nats::get_stamp(b).seq, 9u);
}

// A server's stream: every op the client can see, payloads of 0, 5, 16 and 1500 bytes.
std::string server_stream() {
  std::string s = "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n";
  s += "PING\r\n+OK\r\n";
  s += msg("foo", 1, payload(16, {111, 0, 0, true}));
  s += "MSG foo 2 0\r\n\r\n";
  s += "MSG foo 3 5\r\nhello\r\n";
  s += "MSG foo.bar 4 _INBOX.x " + std::to_string(1500) + "\r\n" + payload(1500, {222}) + "\r\n";
  s += "HMSG foo 5 12 " + std::to_string(12 + 20) + "\r\nNATS/1.0\r\n\r\n" + payload(20, {333}) +
       "\r\n";
  s += "msg  foo\t6   17\r\n" + payload(17, {444}) + "\r\n";  // any case, any blanks
  s += "-ERR 'Slow Consumer'\r\nPONG\n";
  return s;
}

TEST(NatsCodec, ParsesEveryOpWhole) {
  const Parsed p = feed(server_stream(), {});
  using nats::Ev;
  const std::vector<Ev> want{Ev::info, Ev::ping, Ev::ok,  Ev::msg, Ev::msg, Ev::msg,
                             Ev::msg,  Ev::msg,  Ev::msg, Ev::err, Ev::pong};
  EXPECT_EQ(p.kinds, want);
  EXPECT_EQ(p.sids, (std::vector<uint32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(p.sizes, (std::vector<uint32_t>{16, 0, 5, 1500, 32, 17}));
  EXPECT_EQ(p.heads, (std::vector<uint32_t>{16, 0, 5, 16, 16, 16}));
  EXPECT_EQ(p.stamps, (std::vector<uint64_t>{111, 222, 333, 444}));
}

TEST(NatsCodec, SameResultWhereverTheStreamIsSplit) {
  const std::string s = server_stream();
  const Parsed whole = feed(s, {});
  for (size_t i = 1; i < s.size(); ++i) ASSERT_EQ(feed(s, {i}), whole) << "split at " << i;
  for (size_t i = 1; i + 7 < s.size(); i += 3)
    ASSERT_EQ(feed(s, {i, i + 7}), whole) << "split at " << i << " and " << i + 7;
  std::vector<size_t> each;
  for (size_t i = 1; i < s.size(); ++i) each.push_back(i);
  EXPECT_EQ(feed(s, each), whole) << "one byte at a time";
}

TEST(NatsCodec, RefusesWhatIsNotTheServerProtocol) {
  using nats::Ev;
  for (const std::string bad :
       {"HELLO\r\n", "MSG foo\r\n", "MSG foo x 3\r\nabc\r\n", "MSG foo 1 -3\r\n",
        "MSG foo 1 a b c d\r\n", "MSG foo 1 99999999999\r\n", "MSG foo 1 3\r\nabcd\r\n",
        "MSG foo 1 3\r\nabc\n\n", "HMSG foo 1 9 3\r\n", "PINGX\r\n", "\r\n"}) {
    const Parsed p = feed(bad, {});
    ASSERT_FALSE(p.kinds.empty()) << bad;
    EXPECT_EQ(p.kinds.back(), Ev::bad) << bad;
  }
  // A control line may be long (INFO with many URLs) but not beyond the limit.
  const std::string info = "INFO {" + std::string(nats::kMaxControlLine - 8, 'a') + "}\r\n";
  EXPECT_EQ(feed(info, {}).kinds, std::vector<Ev>{Ev::info});
  nats::RxState st;
  const std::string open(nats::kMaxControlLine, 'a');
  EXPECT_EQ(nats::next(st, bytes(open)).kind, Ev::need_more);
  const std::string over(nats::kMaxControlLine + 2, 'a');
  EXPECT_EQ(nats::next(st, bytes(over)).kind, Ev::bad);
  // A payload over the limit is refused at its control line.
  EXPECT_EQ(feed("MSG a 1 " + std::to_string(nats::kMaxPayload + 1) + "\r\n", {}).kinds.back(),
            Ev::bad);
}

// ---- the client over the fake backend ---------------------------------------------------

// The bench client fixture's fake backend and clock, with a NatsClient instead.
class NatsClientTest : public ClientFixture {
 protected:
  void make(ClientConfig c, NatsConfig n) {
    c.target = target;
    c.scan_ns = 0;
    c.sockets = {dp::SocketId(0)};
    cfg = c;
    res = std::make_unique<ClientResults>();
    client = std::make_unique<NatsClient>(c, n, res.get());
  }
  void tick(uint64_t now) {
    auto c = ctx(now);
    client->on_tick(c);
    io.flush();
  }
  rt::StreamVerdict in(uint64_t now, dp::ConnId c, const std::string& s) {
    auto x = ctx(now);
    auto v = client->on_stream(x, c, bytes(s));
    io.flush();
    return v;
  }
  std::string out(dp::ConnId c) { return str(io.take_stream_out(c)); }
  // Connects every connection, answers INFO and the handshake PONG; returns them in order
  // (publishers first) and what each sent in its handshake.
  std::vector<dp::ConnId> connect_all(uint64_t now, std::vector<std::string>* hello = nullptr) {
    tick(now);
    std::vector<dp::ConnId> ids;
    for (auto& [cid, ep] : io.take_connects()) {
      ids.push_back(cid);
      io.complete_connect(cid);
    }
    dp::RxItem items[64];
    const uint32_t n = io.poll(items, 64, 0);
    auto x = ctx(now);
    for (uint32_t i = 0; i < n; ++i) client->on_open(x, items[i]);
    for (dp::ConnId c : ids) {
      EXPECT_EQ(in(now, c, "INFO {\"server_id\":\"s\"}\r\n").close, false);
      const std::string h = out(c);
      if (hello) hello->push_back(h);
      in(now, c, "PONG\r\n");
    }
    return ids;
  }
  // The PUBs in a publisher's output: each payload's stamp; PINGs counted.
  std::vector<nats::Stamp> pubs(const std::string& o, uint32_t* pings = nullptr) {
    std::vector<nats::Stamp> r;
    size_t i = 0;
    while (i < o.size()) {
      if (o.compare(i, 6, "PING\r\n") == 0) {
        if (pings) ++*pings;
        i += 6;
        continue;
      }
      EXPECT_EQ(o.compare(i, 4, "PUB "), 0) << o.substr(i, 40);
      const size_t eol = o.find("\r\n", i);
      const size_t sp = o.rfind(' ', eol);
      const size_t n = std::stoul(o.substr(sp + 1, eol - sp - 1));
      r.push_back(nats::get_stamp(reinterpret_cast<const uint8_t*>(o.data()) + eol + 2));
      EXPECT_EQ(o.compare(eol + 2 + n, 2, "\r\n"), 0);
      i = eol + 2 + n + 2;
    }
    return r;
  }

  // Closed loop, one publisher to two subscribers (one worker).
  void make_closed(uint32_t window, uint64_t count, uint32_t msg_size, bool ack_window) {
    ClientConfig c;
    c.mode = LoopMode::closed;
    c.window = window;
    c.count = count;
    c.msg_size = msg_size;
    NatsConfig n;
    n.subs = n.subs_total = 2;
    n.subject = "bench.x";
    n.ack_window = ack_window;
    make(c, n);
  }

  std::unique_ptr<NatsClient> client;  // hides the fixture's Client
};

TEST_F(NatsClientTest, ClosedLoopAckWindowFanOutToEverySubscriber) {
  make_closed(4, 6, 20, true);
  std::vector<std::string> hello;
  const auto ids = connect_all(0, &hello);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(hello[0].rfind("CONNECT {", 0), 0u);
  EXPECT_EQ(hello[0].find("SUB "), std::string::npos) << "a publisher subscribes nothing";
  EXPECT_NE(hello[1].find("\r\nSUB bench.x 1\r\nPING\r\n"), std::string::npos) << hello[1];
  EXPECT_NE(hello[2].find("\r\nSUB bench.x 2\r\nPING\r\n"), std::string::npos) << hello[2];
  EXPECT_EQ(client->ready_conns(), 3u);

  tick(kMs);  // all set up: running; four PUBs, a PING after every second one
  EXPECT_EQ(client->phase(), Phase::running);
  uint32_t pings = 0;
  auto sent = pubs(out(ids[0]), &pings);
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(pings, 2u);
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(sent[i].seq, i);
    EXPECT_TRUE(sent[i].measured);
    EXPECT_EQ(sent[i].intended_ns, kMs);
  }
  tick(2 * kMs);
  EXPECT_TRUE(out(ids[0]).empty()) << "window full until a PONG";
  in(2 * kMs, ids[0], "PONG\r\n");  // acknowledges two
  tick(3 * kMs);
  auto more = pubs(out(ids[0]), &pings);
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[1].seq, 5u);
  EXPECT_EQ(client->phase(), Phase::draining) << "count reached";
  sent.insert(sent.end(), more.begin(), more.end());

  // Both subscribers get all six, the second one in two reads split inside a payload.
  std::string all;
  for (const auto& s : sent) all += msg("bench.x", 1, payload(20, s));
  in(5 * kMs, ids[1], all);
  EXPECT_EQ(res->received.get(), 6u);
  tick(5 * kMs);
  EXPECT_EQ(client->phase(), Phase::draining) << "6 of 12 delivered";
  auto v = in(6 * kMs, ids[2], all.substr(0, 50));
  in(6 * kMs, ids[2], all.substr(v.consumed));
  EXPECT_EQ(res->received.get(), 12u);
  EXPECT_EQ(res->hist.count(), 12u);
  EXPECT_EQ(res->hist.min(), 5 * kMs - 3 * kMs);
  EXPECT_EQ(res->hist.max(), 6 * kMs - kMs);
  EXPECT_EQ(res->sent.get(), 6u);
  tick(6 * kMs);
  EXPECT_EQ(client->phase(), Phase::done);
  EXPECT_EQ(res->errors.get(), 0u);
  EXPECT_EQ(res->nats_out_of_order.get(), 0u);
}

// By default a closed-loop PUB stays in flight until every subscriber got it; PONGs do
// not move the window and no PINGs are sent.
TEST_F(NatsClientTest, ClosedLoopWindowFollowsDeliveries) {
  make_closed(2, 100, 16, false);
  const auto ids = connect_all(0);
  tick(kMs);
  uint32_t pings = 0;
  auto sent = pubs(out(ids[0]), &pings);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(pings, 0u);
  in(kMs, ids[0], "PONG\r\n");
  tick(2 * kMs);
  EXPECT_TRUE(out(ids[0]).empty()) << "a PONG acknowledges nothing here";
  // The first message reaches one subscriber: still in flight (1 of 2 deliveries).
  in(3 * kMs, ids[1], msg("bench", 1, payload(16, sent[0])));
  tick(3 * kMs);
  EXPECT_TRUE(out(ids[0]).empty());
  // ... and the other: one slot opens.
  in(4 * kMs, ids[2], msg("bench", 2, payload(16, sent[0])));
  tick(4 * kMs);
  auto more = pubs(out(ids[0]));
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].seq, 2u);
  // Both of the second message, to one subscriber each: two deliveries of 2 = one more.
  in(5 * kMs, ids[1], msg("bench", 1, payload(16, sent[1])));
  in(5 * kMs, ids[2], msg("bench", 2, payload(16, sent[1])));
  tick(5 * kMs);
  EXPECT_EQ(pubs(out(ids[0])).size(), 1u);
  EXPECT_EQ(res->received.get(), 4u);
}

TEST_F(NatsClientTest, OpenLoopStampsIntendedTimesAndJoinsTheQueueGroup) {
  ClientConfig c;
  c.mode = LoopMode::open;
  c.rate = 1000;  // one every ms
  c.duration_ns = 4 * kMs;
  c.warmup_ns = 1 * kMs;
  c.msg_size = 16;
  NatsConfig n;
  n.pubs = 2;
  n.subs = 1;
  n.pubs_total = 2;
  n.subs_total = 1;
  n.queue = "workers";
  make(c, n);
  std::vector<std::string> hello;
  const auto ids = connect_all(0, &hello);
  EXPECT_NE(hello[2].find("SUB bench workers 1\r\n"), std::string::npos) << hello[2];
  tick(10 * kMs);  // starts the schedule at 10 ms
  tick(13 * kMs);  // 10 (warm-up), 11, 12, 13 due: round-robin over the two publishers
  auto p0 = pubs(out(ids[0]));
  auto p1 = pubs(out(ids[1]));
  ASSERT_EQ(p0.size(), 2u);
  ASSERT_EQ(p1.size(), 2u);
  EXPECT_EQ(p0[0].intended_ns, 10 * kMs);
  EXPECT_FALSE(p0[0].measured) << "warm-up";
  EXPECT_EQ(p1[0].intended_ns, 11 * kMs);
  EXPECT_TRUE(p1[0].measured);
  EXPECT_EQ(p0[1].intended_ns, 12 * kMs);
  EXPECT_EQ(p0[1].pub, 0u);
  EXPECT_EQ(p1[1].pub, 1u);
  EXPECT_EQ(res->warmup_sent.get(), 1u);
  EXPECT_EQ(res->sent.get(), 3u);
  // Delivered late: latency counts from the intended time. Publisher 1's second message
  // before its first is out of order.
  in(20 * kMs, ids[2],
     msg("bench", 1, payload(16, p0[0])) + msg("bench", 1, payload(16, p1[1])) +
         msg("bench", 1, payload(16, p1[0])) + msg("bench", 1, payload(16, p0[1])));
  EXPECT_EQ(res->received.get(), 3u);
  EXPECT_EQ(res->nats_warmup_msgs.get(), 1u);
  EXPECT_EQ(res->nats_out_of_order.get(), 1u);
  EXPECT_EQ(res->hist.max(), 20 * kMs - 11 * kMs);
  tick(14 * kMs);  // the last one: the measured phase is [11 ms, 15 ms)
  EXPECT_EQ(pubs(out(ids[0])).size() + pubs(out(ids[1])).size(), 1u);
  tick(15 * kMs);
  EXPECT_EQ(client->phase(), Phase::draining);
  // The queue group expects each message once; one is missing until the timeout.
  tick(16 * kMs);
  EXPECT_EQ(client->phase(), Phase::draining);
  tick(15 * kMs + cfg.timeout_ns);
  EXPECT_EQ(client->phase(), Phase::done);
  EXPECT_EQ(res->sent.get(), 4u);
}

TEST_F(NatsClientTest, AnswersServerPingCountsErrAndClosesOnGarbage) {
  ClientConfig c;
  c.count = 1;
  NatsConfig n;
  make(c, n);
  const auto ids = connect_all(0);
  ASSERT_EQ(ids.size(), 2u);
  in(kMs, ids[1], "PING\r\n");
  EXPECT_EQ(out(ids[1]), "PONG\r\n");
  in(kMs, ids[1], "-ERR 'Unknown Protocol Operation'\r\n");
  EXPECT_EQ(res->nats_err_lines.get(), 1u);
  EXPECT_EQ(res->errors.get(), 1u);
  // A MSG too short for a stamp is counted, not timed.
  in(kMs, ids[1], "MSG bench 1 3\r\nabc\r\n");
  EXPECT_EQ(res->nats_unstamped.get(), 1u);
  EXPECT_EQ(res->received.get(), 0u);
  auto v = in(kMs, ids[1], "garbage\r\n");
  EXPECT_TRUE(v.close);
  EXPECT_EQ(res->nats_bad.get(), 1u);
  // Bytes of a connection that is not ours are dropped with it.
  EXPECT_TRUE(in(kMs, dp::ConnId(12345), "PING\r\n").close);
}

TEST_F(NatsClientTest, NoServerAnswerEndsTheRunAfterTheConnectTimeout) {
  ClientConfig c;
  c.count = 10;
  NatsConfig n;
  make(c, n);
  tick(0);
  EXPECT_EQ(io.take_connects().size(), 2u);
  tick(cfg.connect_timeout_ns - 1);
  EXPECT_EQ(client->phase(), Phase::connecting);
  // Past the deadline: it runs with no publisher, so nothing is expected and it is done.
  tick(cfg.connect_timeout_ns);
  EXPECT_EQ(client->phase(), Phase::done);
  EXPECT_EQ(res->sent.get(), 0u);
}

// Two workers: one publishes, the other only subscribes. The subscriber's worker waits for
// the publisher's to finish (not its own timeout from the start) and for every delivery.
TEST_F(NatsClientTest, SubscriberOnlyWorkerWaitsForThePublishers) {
  auto shared = std::make_shared<NatsShared>(2, 1);
  ClientConfig c;
  c.mode = LoopMode::closed;
  c.window = 2;
  c.duration_ns = 3 * cfg.timeout_ns;  // far longer than the drain timeout
  c.msg_size = 16;
  NatsConfig n;
  n.pubs = 0;
  n.subs = 1;
  n.pubs_total = 1;
  n.subs_total = 1;
  n.shared = shared;
  make(c, n);  // `client`: the subscriber's worker
  const auto sub = connect_all(0);
  ASSERT_EQ(sub.size(), 1u);
  tick(kMs);
  EXPECT_EQ(client->phase(), Phase::connecting) << "waits for the other worker";

  ClientResults pres;
  NatsConfig pn = n;
  pn.pubs = 1;
  pn.subs = 0;
  NatsClient pub(cfg, pn, &pres);
  auto x = ctx(kMs);
  pub.on_tick(x);
  auto conns = io.take_connects();
  ASSERT_EQ(conns.size(), 1u);
  const dp::ConnId pc = conns[0].first;
  io.complete_connect(pc);
  dp::RxItem items[4];
  ASSERT_EQ(io.poll(items, 4, 0), 1u);
  pub.on_open(x, items[0]);
  pub.on_stream(x, pc, bytes("INFO {}\r\n"));
  pub.on_stream(x, pc, bytes("PONG\r\n"));
  io.flush();
  io.take_stream_out(pc);
  pub.on_tick(x);  // both ready: the publisher runs
  tick(2 * kMs);
  EXPECT_EQ(pub.phase(), Phase::running);
  EXPECT_EQ(client->phase(), Phase::draining) << "nothing of its own to publish";
  tick(2 * kMs + 2 * cfg.timeout_ns);
  EXPECT_EQ(client->phase(), Phase::draining) << "the publisher is still at it";

  // The publisher's run ends; its two messages arrive; both workers finish.
  const uint64_t end = kMs + c.duration_ns;
  auto y = ctx(end);
  pub.on_tick(y);
  io.flush();
  const auto sent = pubs(out(pc));
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(pub.phase(), Phase::draining);
  std::string all;
  for (const auto& s : sent) all += msg("bench", 1, payload(16, s));
  in(end, sub[0], all);
  tick(end);
  pub.on_tick(y);
  EXPECT_EQ(client->phase(), Phase::done);
  EXPECT_EQ(pub.phase(), Phase::done);
  EXPECT_EQ(res->received.get(), 2u);
  EXPECT_EQ(pres.sent.get(), 2u);
}

// The report: loss against published x fan-out, the sweep's achieved load, the JSON.
TEST(NatsReport, ExpectedDeliveriesLossAndJson) {
  RunResult r;
  r.info.proto = "nats";
  r.info.transport = "tcp";
  r.info.nats = {2, 3, "bench", ""};
  r.sent = 100;
  r.received = 250;
  r.elapsed_s = 1.0;
  r.nats.pub_elapsed_s = 0.5;
  r.set_nats_expected(100, 3);
  EXPECT_EQ(r.nats.expected, 300u);
  EXPECT_EQ(r.lost, 50u);
  EXPECT_DOUBLE_EQ(r.loss_ratio(), 50.0 / 300.0);
  EXPECT_DOUBLE_EQ(r.achieved_load(), 250.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.published_per_s(), 200.0);
  const auto j = nlohmann::json::parse(json_report(r));
  EXPECT_EQ(j["nats"]["expected"], 300);
  EXPECT_EQ(j["nats"]["delivered"], 250);
  EXPECT_EQ(j["nats"]["subscribers"], 3);
  EXPECT_DOUBLE_EQ(j["nats"]["delivered_per_s"].get<double>(), 250.0);
  EXPECT_DOUBLE_EQ(j["throughput_msgs"].get<double>(), 250.0);
  EXPECT_FALSE(j.contains("kv"));
  EXPECT_NE(text_report(r).find("nats 2 pub(s) -> 3 sub(s)"), std::string::npos);
  // More delivered than expected (a stray duplicate) is no negative loss.
  r.received = 400;
  r.set_nats_expected(100, 3);
  EXPECT_EQ(r.lost, 0u);
}

}  // namespace
}  // namespace cw::bench
