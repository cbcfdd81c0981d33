// The load-generator client service over the fake backend, with a hand-driven clock: the
// open-loop schedule, latency from the intended send time, loss after the timeout, the
// sockperf and native dialects, closed-loop windows, TCP connections and payload checks.
#include "bench/corewire_bench/client.hh"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "tests/bench/client_fixture.hh"

namespace cw::bench {
namespace {

namespace sp = proto::sockperf;
namespace nv = proto::native;
using dp::FakeWorker;

constexpr uint64_t kMs = 1'000'000;

class ClientTest : public ClientFixture {
 protected:
  // The server's answer to a sockperf request, as cw's echo would send it.
  static std::vector<uint8_t> sockperf_reply(std::vector<uint8_t> req) {
    sp::make_reply(req.data());
    return req;
  }
  static std::vector<uint8_t> native_reply(std::vector<uint8_t> req) {
    auto d = nv::decode(req);
    EXPECT_EQ(d.status, nv::Status::ok);
    nv::Header h = d.header;
    h.kind = nv::Kind::response;
    nv::encode_header(req.data(), h);
    return req;
  }
  static uint64_t seq_of(const std::vector<uint8_t>& m) { return sp::parse(m).header.seq; }
};

ClientConfig open_loop(double rate, uint64_t count) {
  ClientConfig c;
  c.dialect = Dialect::sockperf;
  c.mode = LoopMode::open;
  c.rate = rate;
  c.count = count;
  c.msg_size = 32;
  c.timeout_ns = 5 * kMs;
  return c;
}

ClientConfig slow_timeout(ClientConfig c) {
  c.timeout_ns = 100 * kMs;
  return c;
}

TEST_F(ClientTest, OpenLoopSendsAtIntendedTimesWithoutWaitingForReplies) {
  make(slow_timeout(open_loop(1000, 100)));  // one request per ms
  EXPECT_EQ(tick(0).size(), 1u) << "the schedule starts at the first tick";
  EXPECT_EQ(tick(kMs / 2).size(), 0u) << "nothing is due before 1 ms";
  EXPECT_EQ(tick(kMs).size(), 1u);
  // The client stalls for 4 ms: everything due meanwhile goes out at once, unanswered.
  auto late = tick(5 * kMs);
  ASSERT_EQ(late.size(), 4u);
  EXPECT_EQ(seq_of(late[0].bytes), 2u);
  EXPECT_EQ(seq_of(late[3].bytes), 5u);
  EXPECT_EQ(late[0].to, target);
  EXPECT_EQ(res->sent.get(), 6u);
  EXPECT_EQ(client->outstanding(), 6u);
}

TEST_F(ClientTest, LatencyIsMeasuredFromTheIntendedSendTime) {
  make(slow_timeout(open_loop(1000, 100)));
  tick(0);
  auto out = tick(10 * kMs);  // seqs 1..10 intended at 1..10 ms, all sent at 10 ms
  ASSERT_EQ(out.size(), 10u);
  reply_dgram(12 * kMs, 0, sockperf_reply(out[0].bytes));  // seq 1, intended 1 ms
  reply_dgram(12 * kMs, 0, sockperf_reply(out[9].bytes));  // seq 10, intended 10 ms
  EXPECT_EQ(res->received.get(), 2u);
  EXPECT_EQ(res->hist.max(), 11 * kMs) << "12 ms - intended 1 ms, not 12 - 10 (sent)";
  EXPECT_EQ(res->hist.min(), 2 * kMs);
}

TEST_F(ClientTest, UnansweredRequestsAreLostAfterTheTimeoutAndLateRepliesNotCounted) {
  make(open_loop(1000, 3));
  auto a = tick(0);
  auto b = tick(1 * kMs);
  auto c = tick(2 * kMs);
  ASSERT_EQ(a.size() + b.size() + c.size(), 3u);
  reply_dgram(3 * kMs, 0, sockperf_reply(b[0].bytes));
  tick(3 * kMs);
  EXPECT_EQ(client->phase(), Phase::draining) << "count reached: waiting for replies";
  tick(5 * kMs - 1);
  EXPECT_EQ(res->lost.get(), 0u) << "seq 0 (intended 0) is not yet 5 ms old";
  tick(5 * kMs + 1);
  EXPECT_EQ(res->lost.get(), 1u);
  tick(7 * kMs + 1);
  EXPECT_EQ(res->lost.get(), 2u);
  EXPECT_EQ(client->phase(), Phase::done) << "nothing outstanding any more";
  EXPECT_TRUE(res->done());
  reply_dgram(8 * kMs, 0, sockperf_reply(a[0].bytes));
  EXPECT_EQ(res->received.get(), 1u);
  EXPECT_EQ(res->late.get(), 1u);
  EXPECT_EQ(res->hist.count(), 1u);
}

TEST_F(ClientTest, SockperfRequestsAskForAPongAndRepliesMatchBySequence) {
  make(open_loop(1000, 4));
  std::vector<std::vector<uint8_t>> reqs;
  for (uint64_t t = 0; t < 4; ++t)
    for (auto& d : tick(t * kMs)) reqs.push_back(d.bytes);
  ASSERT_EQ(reqs.size(), 4u);
  for (uint64_t i = 0; i < 4; ++i) {
    const sp::Frame f = sp::parse(reqs[i]);
    ASSERT_EQ(f.status, sp::Status::ok);
    EXPECT_EQ(f.header.flags, sp::kClient | sp::kPongRequest);
    EXPECT_EQ(f.header.seq, i);
    EXPECT_EQ(f.header.len, 32u);
    EXPECT_EQ(reqs[i].size(), 32u);
  }
  // Out-of-order replies are matched to their own request (latency from each one's time).
  reply_dgram(10 * kMs, 0, sockperf_reply(reqs[3]));
  reply_dgram(10 * kMs, 0, sockperf_reply(reqs[0]));
  EXPECT_EQ(res->hist.max(), 10 * kMs);
  EXPECT_EQ(res->hist.min(), 7 * kMs);
  // A duplicate is not counted twice; a message still flagged "client" is no reply.
  reply_dgram(10 * kMs, 0, sockperf_reply(reqs[3]));
  EXPECT_EQ(res->late.get(), 1u);
  reply_dgram(10 * kMs, 0, reqs[1]);
  EXPECT_EQ(res->errors.get(), 1u);
  EXPECT_EQ(res->received.get(), 2u);
}

TEST_F(ClientTest, TruncatedDatagramIsAnError) {
  make(open_loop(1000, 1));
  auto out = tick(0);
  auto r = sockperf_reply(out[0].bytes);
  r.resize(10);
  reply_dgram(kMs, 0, r);
  EXPECT_EQ(res->errors.get(), 1u);
  EXPECT_EQ(res->received.get(), 0u);
}

TEST_F(ClientTest, PoissonArrivalsAverageTheRate) {
  auto c = open_loop(10000, 0);  // mean gap 100 us
  c.arrival = Arrival::poisson;
  c.duration_ns = 1000 * kMs;
  c.max_outstanding = 1 << 15;
  c.timeout_ns = 10'000 * kMs;
  make(c);
  size_t n = 0;
  std::vector<uint64_t> per_ms;
  for (uint64_t t = 0; t <= 1000 * kMs; t += kMs) {
    const size_t k = tick(t).size();
    per_ms.push_back(k);
    n += k;
  }
  EXPECT_NEAR(double(n), 10000.0, 400.0);  // > 4 sigma for a Poisson count
  // Poisson, not fixed: the per-ms counts vary.
  EXPECT_NE(*std::min_element(per_ms.begin() + 1, per_ms.end()),
            *std::max_element(per_ms.begin() + 1, per_ms.end()));
}

// Closed loop, native dialect: 2 flows x 3 outstanding, 40-byte requests.
ClientConfig closed_native() {
  ClientConfig c;
  c.dialect = Dialect::native;
  c.window = 3;
  c.flows = 2;
  c.count = 100;
  c.msg_size = 40;
  return c;
}

TEST_F(ClientTest, ClosedLoopKeepsTheWindowOutstanding) {
  make(closed_native());
  auto out = tick(0);
  ASSERT_EQ(out.size(), 6u) << "3 per flow";
  EXPECT_EQ(out[0].sock, 0);
  EXPECT_EQ(out[5].sock, 1);
  EXPECT_EQ(tick(kMs).size(), 0u) << "window full";
  const auto d = nv::decode(out[1].bytes);
  ASSERT_EQ(d.status, nv::Status::ok);
  EXPECT_EQ(d.header.kind, nv::Kind::request);
  EXPECT_EQ(d.header.request_id, 1u);
  EXPECT_EQ(d.frame_len, 40u);
  reply_dgram(2 * kMs, 0, native_reply(out[1].bytes));
  EXPECT_EQ(res->hist.max(), 2 * kMs);
  auto next = tick(2 * kMs);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].sock, 0);
  EXPECT_EQ(nv::decode(next[0].bytes).header.request_id, 3u);
}

// sends_per_tick bounds each tick's top-up; the rest follows in later ticks, and the next
// top-up starts with the flow the budget ran out in, so no flow waits behind the others.
TEST_F(ClientTest, ClosedLoopSendsAtMostItsBudgetPerTickAndServesFlowsInTurn) {
  ClientConfig c = closed_native();
  c.sends_per_tick = 4;
  make(c);
  auto socks = [](const std::vector<dp::FakeWorker::SentDatagram>& v) {
    std::vector<dp::SocketId> s;
    for (const auto& d : v) s.push_back(d.sock);
    return s;
  };
  const auto a = tick(0);
  EXPECT_EQ(socks(a), (std::vector<dp::SocketId>{0, 0, 0, 1}));
  const auto b = tick(kMs);
  EXPECT_EQ(socks(b), (std::vector<dp::SocketId>{1, 1})) << "the rest of flow 1's window";
  EXPECT_EQ(tick(2 * kMs).size(), 0u) << "both windows full";
  for (const auto& d : a) reply_dgram(3 * kMs, d.sock, native_reply(d.bytes));
  for (const auto& d : b) reply_dgram(3 * kMs, d.sock, native_reply(d.bytes));
  EXPECT_EQ(res->received.get(), 6u);
  EXPECT_EQ(socks(tick(3 * kMs)), (std::vector<dp::SocketId>{1, 1, 1, 0}))
      << "flow 1, where the first budget ran out, goes first";
  EXPECT_EQ(socks(tick(4 * kMs)), (std::vector<dp::SocketId>{0, 0}));
  EXPECT_EQ(client->outstanding(), 6u);
}

// The client uses the socket ids it was given, not 0..flows-1, and maps replies back.
TEST_F(ClientTest, UsesTheDeclaredSocketIds) {
  ClientConfig c;
  c.dialect = Dialect::native;
  c.flows = 2;
  c.count = 4;
  c.sockets = {3, 2};
  make(c);
  auto out = tick(0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].sock, 3);
  EXPECT_EQ(out[1].sock, 2);
  reply_dgram(kMs, 2, native_reply(out[1].bytes));
  EXPECT_EQ(res->received.get(), 1u);
  EXPECT_EQ(res->errors.get(), 0u);
  reply_dgram(kMs, 0, native_reply(out[0].bytes));  // not one of its sockets: ignored
  EXPECT_EQ(res->received.get(), 1u);
  auto next = tick(2 * kMs);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].sock, 2) << "the answered flow sends its next request";
}

TEST_F(ClientTest, NativeErrorReplyIsCountedAsError) {
  ClientConfig c;
  c.count = 1;
  make(c);
  auto out = tick(0);
  ASSERT_EQ(out.size(), 1u);
  auto r = out[0].bytes;
  auto d = nv::decode(r);
  nv::Header h = d.header;
  h.kind = nv::Kind::error;
  nv::encode_header(r.data(), h);
  reply_dgram(kMs, 0, r);
  EXPECT_EQ(res->errors.get(), 1u);
  EXPECT_EQ(res->received.get(), 0u);
}

TEST_F(ClientTest, CheckFindsCorruptedPayloads) {
  auto c = open_loop(1000, 2);
  c.check = true;
  c.msg_size = 64;
  make(c);
  auto a = tick(0);
  auto b = tick(kMs);
  reply_dgram(2 * kMs, 0, sockperf_reply(a[0].bytes));
  auto bad = sockperf_reply(b[0].bytes);
  bad[40] ^= 1;
  reply_dgram(2 * kMs, 0, bad);
  EXPECT_EQ(res->received.get(), 1u);
  EXPECT_EQ(res->errors.get(), 1u);
}

TEST_F(ClientTest, FullOutstandingTableCountsTheOldestAsLost) {
  auto c = open_loop(1000, 100);
  c.max_outstanding = 4;
  c.timeout_ns = 1000 * kMs;
  make(c);
  tick(0);
  tick(3 * kMs);
  EXPECT_EQ(client->outstanding(), 4u);
  EXPECT_EQ(tick(4 * kMs).size(), 1u) << "the schedule is kept";
  EXPECT_EQ(res->lost.get(), 1u);
  EXPECT_EQ(client->outstanding(), 4u);
}

TEST_F(ClientTest, WarmupRequestsAreSentButNotMeasured) {
  auto c = open_loop(1000, 2);
  c.warmup_ns = 2 * kMs;
  make(c);
  auto w = tick(0);
  tick(kMs);
  auto m = tick(2 * kMs);
  EXPECT_EQ(res->warmup_sent.get(), 2u);
  EXPECT_EQ(res->sent.get(), 1u);
  reply_dgram(3 * kMs, 0, sockperf_reply(w[0].bytes));
  reply_dgram(3 * kMs, 0, sockperf_reply(m[0].bytes));
  EXPECT_EQ(res->received.get(), 1u);
  EXPECT_EQ(res->hist.count(), 1u);
  EXPECT_EQ(res->measure_start_ns, 2 * kMs);
}

TEST_F(ClientTest, TcpConnectsFlowsThenStreamsRepliesAcrossSegments) {
  auto c = open_loop(1000, 3);
  c.transport = dp::Transport::tcp;
  c.flows = 2;
  make(c);
  tick(0);
  auto conns = io.take_connects();
  ASSERT_EQ(conns.size(), 2u);
  EXPECT_EQ(conns[0].second, target);
  EXPECT_EQ(client->phase(), Phase::connecting);
  // Deliver both stream_open items to the client.
  for (auto& [cid, ep] : conns) io.complete_connect(cid);
  dp::RxItem items[4];
  const uint32_t n = io.poll(items, 4, 0);
  ASSERT_EQ(n, 2u);
  auto cx = ctx(kMs);
  for (uint32_t i = 0; i < n; ++i) client->on_open(cx, items[i]);
  EXPECT_EQ(res->conns_open.get(), 2u);
  tick(kMs);      // starts the schedule at 1 ms: first request on flow 0
  tick(2 * kMs);  // flow 1
  tick(3 * kMs);  // flow 0
  auto out0 = io.take_stream_out(conns[0].first);
  auto out1 = io.take_stream_out(conns[1].first);
  ASSERT_EQ(out0.size(), 64u) << "two 32-byte requests";
  ASSERT_EQ(out1.size(), 32u);
  // Replies on conn 0: one and a half frames, then the rest.
  std::vector<uint8_t> r = out0;
  sp::make_reply(r.data());
  sp::make_reply(r.data() + 32);
  auto v = client->on_stream(cx, conns[0].first, std::span(r).first(48));
  EXPECT_EQ(v.consumed, 32u);
  EXPECT_FALSE(v.close);
  v = client->on_stream(cx, conns[0].first, std::span(r).subspan(32));
  EXPECT_EQ(v.consumed, 32u);
  EXPECT_EQ(res->received.get(), 2u);
  // Garbage (length below the header) closes the connection and counts an error.
  std::vector<uint8_t> junk(14, 0);
  v = client->on_stream(cx, conns[1].first, junk);
  EXPECT_TRUE(v.close);
  EXPECT_EQ(res->errors.get(), 1u);
  // A closed connection loses what it had outstanding.
  dp::RxItem closed{
      dp::RxKind::stream_closed, dp::CloseReason::peer, 0, conns[1].first, target, 0, nullptr};
  client->on_closed(cx, closed);
  EXPECT_EQ(res->lost.get(), 1u);
  EXPECT_EQ(res->conns_open.get(), 1u);
  EXPECT_EQ(res->conns_closed.get(), 1u);
}

// TCP closed loop: a flow's top-up is one reservation of several requests, cut short where
// the count ends; the stream holds exactly the requests counted, in sequence.
TEST_F(ClientTest, TcpClosedLoopTopUpStopsAtTheCount) {
  ClientConfig c;
  c.dialect = Dialect::sockperf;
  c.transport = dp::Transport::tcp;
  c.flows = 1;
  c.window = 5;
  c.count = 3;
  c.msg_size = 32;
  make(c);
  const dp::ConnId conn = connect();
  ASSERT_NE(conn, dp::kNoConn);
  auto cx = ctx(kMs);
  tick(kMs);
  const auto out = io.take_stream_out(conn);
  ASSERT_EQ(out.size(), 96u) << "the count (3) ends the window's top-up of 5";
  for (uint64_t i = 0; i < 3; ++i) {
    const sp::Frame f = sp::parse(std::span(out).subspan(i * 32));
    ASSERT_EQ(f.status, sp::Status::ok);
    EXPECT_EQ(f.header.seq, i);
    EXPECT_EQ(f.frame_len, 32u);
  }
  EXPECT_EQ(res->sent.get(), 3u);
  EXPECT_EQ(client->outstanding(), 3u);
  std::vector<uint8_t> r = out;
  for (uint32_t i = 0; i < 3; ++i) sp::make_reply(r.data() + i * 32);
  EXPECT_EQ(client->on_stream(cx, conn, r).consumed, 96u);
  EXPECT_EQ(res->received.get(), 3u);
  tick(2 * kMs);
  EXPECT_TRUE(io.take_stream_out(conn).empty()) << "nothing after the count";
}

TEST_F(ClientTest, FailedConnectsAreCountedAndTheRunStillEnds) {
  auto c = open_loop(1000, 3);
  c.transport = dp::Transport::tcp;
  c.flows = 1;
  make(c);
  tick(0);
  auto conns = io.take_connects();
  ASSERT_EQ(conns.size(), 1u);
  auto cx = ctx(kMs);
  dp::RxItem failed{dp::RxKind::stream_closed,
                    dp::CloseReason::connect_failed,
                    0,
                    conns[0].first,
                    target,
                    0,
                    nullptr};
  client->on_closed(cx, failed);
  EXPECT_EQ(res->conns_failed.get(), 1u);
  tick(kMs);
  EXPECT_TRUE(res->done());
  EXPECT_EQ(res->sent.get(), 0u);
}

TEST_F(ClientTest, ManyConnectionsAreOpenedInPacedBatches) {
  auto c = open_loop(1000, 1);
  c.transport = dp::Transport::tcp;
  c.flows = kConnectsPerTick + 10;
  make(c);
  tick(0);
  EXPECT_EQ(io.take_connects().size(), kConnectsPerTick);
  tick(1);
  EXPECT_EQ(io.take_connects().size(), 10u);
  tick(2);
  EXPECT_TRUE(io.take_connects().empty());
  EXPECT_EQ(client->phase(), Phase::connecting);
  // Nobody answers: after the connect timeout the run starts with no live flow and ends.
  tick(c.connect_timeout_ns + 1);
  EXPECT_TRUE(res->done());
}

}  // namespace
}  // namespace cw::bench
