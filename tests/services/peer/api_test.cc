// The peer API (app/services/peer/api.hh) over two QUIC endpoints joined in memory
// (api_pair.hh) on a simulated clock: requests answered and matched (in order, and out
// of order), a timeout when the peer stops answering, pending requests failed when the peer
// goes down, backpressure, refusals and malformed frames. Skips without certtool.
#include "app/services/peer/api.hh"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "tests/services/peer/api_pair.hh"

namespace cw::peer {
namespace {

using namespace test;

constexpr uint16_t kCh = 7;

using Pair = ApiPair;

std::vector<uint8_t> body_of(uint64_t seq, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seq * 31 + i);
  return v;
}

// What B's service answers: the request's bytes, each plus one.
std::vector<uint8_t> answer_of(std::span<const uint8_t> req) {
  std::vector<uint8_t> v(req.begin(), req.end());
  for (uint8_t& x : v) ++x;
  return v;
}

struct Held {
  ReplyTo to;
  std::vector<uint8_t> body;
};

// B's service: takes every request on kCh and answers them in arrival order, or each poll's
// batch in reverse when reverse is set. An answer that must wait (B's send ring is full until
// A acknowledges) stays in the backlog, in order, for the next run.
struct Server {
  std::vector<Held> backlog;
  size_t done = 0;  // answers of the backlog sent
  uint64_t waits = 0;

  void run(Pair& p, bool reverse) {
    std::vector<Held> got;
    p.ab->poll(kCh, [&](const ApiMessage& m) {
      ASSERT_EQ(m.event, Event::request);
      got.push_back({m.to, {m.body.begin(), m.body.end()}});
    });
    if (reverse) std::reverse(got.begin(), got.end());
    backlog.insert(backlog.end(), got.begin(), got.end());
    for (; done < backlog.size(); ++done) {
      const Send s = p.ab->respond(backlog[done].to, kCh, answer_of(backlog[done].body));
      if (s == Send::wait) {
        ++waits;
        break;
      }
      EXPECT_EQ(s, Send::ok);
    }
    if (done == backlog.size()) backlog.clear(), done = 0;
  }
};

TEST(PeerApi, RequestsAreAnsweredInOrderAndMatchedOutOfOrder) {
  NEED_CERTS();
  Pair p;
  ASSERT_TRUE(p.a->is_open(0));
  ASSERT_TRUE(p.aa->open_channel(kCh, {.max_pending = 256}));
  ASSERT_TRUE(p.ab->open_channel(kCh));
  EXPECT_FALSE(p.aa->open_channel(kCh));           // already open
  EXPECT_FALSE(p.aa->open_channel(kChannelEcho));  // reserved
  EXPECT_EQ(p.aa->state(0), PeerState::up);
  EXPECT_EQ(p.aa->slot_to(kB), 0u);  // the session A dials to B
  EXPECT_EQ(p.aa->slot_to(kA), UINT32_MAX);
  EXPECT_EQ(p.ab->slot_to(kA), UINT32_MAX);  // B dials nobody

  // 4000 requests of 200 bytes, more than the rings, windows and pending table hold at once.
  // The first half B answers in order (A sees them in order); the second each batch reversed
  // (ids match them anyway).
  constexpr uint64_t kN = 4000;
  uint64_t sent = 0, got = 0, bad = 0, out_of_order = 0, last = 0;
  std::vector<bool> seen(kN);
  Server srv;
  for (int r = 0; r < 200000 && got < kN; ++r) {
    while (sent < kN) {
      const Send s = p.aa->request(0, kCh, body_of(sent, 200), sent, p.now());
      if (s == Send::wait) break;
      ASSERT_EQ(s, Send::ok);
      ++sent;
    }
    srv.run(p, got >= kN / 2);
    p.aa->poll(kCh, [&](const ApiMessage& m) {
      ASSERT_EQ(m.event, Event::response);
      ASSERT_LT(m.cookie, kN);
      const std::vector<uint8_t> want = answer_of(body_of(m.cookie, 200));
      bad += seen[m.cookie] || !std::equal(m.body.begin(), m.body.end(), want.begin(), want.end());
      seen[m.cookie] = true;
      if (m.cookie < kN / 2) out_of_order += got && m.cookie != last + 1;
      last = m.cookie;
      ++got;
    });
    p.round();
  }
  EXPECT_EQ(got, kN);
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), int64_t(kN));
  const auto& ca = p.aa->counters();
  const auto& cb = p.ab->counters();
  EXPECT_EQ(ca[kApiRequests], kN);
  EXPECT_EQ(ca[kApiResponses], kN);
  EXPECT_GT(ca[kApiWait], 0u);  // the pending table (256) held the sender back
  EXPECT_EQ(cb[kApiServed], kN);
  EXPECT_EQ(cb[kApiAnswered], kN);
  EXPECT_EQ(ca[kApiTimeouts] + ca[kApiLate] + ca[kApiBad] + cb[kApiBad], 0u);
  EXPECT_EQ(p.aa->next_deadline(), kNever);  // nothing pending
}

TEST(PeerApi, APeerThatStopsAnsweringTimesOutAndTurnsSuspect) {
  NEED_CERTS();
  Pair p(50'000'000);  // 50 ms
  ASSERT_TRUE(p.a->is_open(0));
  ASSERT_TRUE(p.aa->open_channel(kCh));
  ASSERT_TRUE(p.ab->open_channel(kCh));
  for (uint64_t i = 0; i < 5; ++i)
    ASSERT_EQ(p.aa->request(0, kCh, body_of(i, 100), 100 + i, p.now()), Send::ok);
  const uint64_t deadline = p.aa->next_deadline();
  EXPECT_EQ(deadline, p.now() + 50'000'000);
  // B's service takes nothing: no answer. Before the deadline, no event.
  std::vector<ApiMessage> events;
  auto collect = [&](const ApiMessage& m) { events.push_back(m); };
  while (p.now() + 1'000'000 < deadline) {
    p.round(1'000'000);
    p.aa->poll(kCh, collect);
  }
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(p.aa->state(0), PeerState::up);
  for (int i = 0; i < 5; ++i) p.round(1'000'000);
  p.aa->poll(kCh, collect);
  ASSERT_EQ(events.size(), 5u);
  for (uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(events[i].event, Event::timeout);
    EXPECT_EQ(events[i].cookie, 100 + i);
  }
  EXPECT_EQ(p.aa->counters()[kApiTimeouts], 5u);
  EXPECT_EQ(p.aa->state(0), PeerState::suspect);
  EXPECT_EQ(p.aa->next_deadline(), kNever);

  // B answers at last: the late answers are dropped (counted), and the peer is up again.
  events.clear();
  Server srv;
  srv.run(p, false);
  for (int i = 0; i < 20; ++i) {
    p.round();
    p.aa->poll(kCh, collect);
  }
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(p.aa->counters()[kApiLate], 5u);
  EXPECT_EQ(p.aa->state(0), PeerState::up);
  // A new request is answered as usual.
  ASSERT_EQ(p.aa->request(0, kCh, body_of(9, 10), 9, p.now()), Send::ok);
  for (int i = 0; i < 20 && events.empty(); ++i) {
    p.round();
    srv.run(p, false);
    p.aa->poll(kCh, collect);
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, Event::response);
  EXPECT_EQ(events[0].cookie, 9u);
}

TEST(PeerApi, PendingRequestsFailWhenThePeerGoesDown) {
  NEED_CERTS();
  Pair p;
  ASSERT_TRUE(p.a->is_open(0));
  ASSERT_TRUE(p.aa->open_channel(kCh));
  ASSERT_TRUE(p.ab->open_channel(kCh));
  for (uint64_t i = 0; i < 10; ++i)
    ASSERT_EQ(p.aa->request(0, kCh, body_of(i, 50), i, p.now()), Send::ok);
  for (int i = 0; i < 10; ++i) p.round();
  // B received them; its service holds them and the session ends (B closes it).
  std::vector<Held> held;
  p.ab->poll(kCh, [&](const ApiMessage& m) { held.push_back({m.to, {}}); });
  ASSERT_EQ(held.size(), 10u);
  const uint32_t bs = p.b_slot();
  ASSERT_NE(bs, UINT32_MAX);
  p.b->close(bs, 0);
  std::vector<ApiMessage> events;
  for (int i = 0; i < 50 && events.size() < 10; ++i) {
    p.round(1'000'000);
    p.aa->poll(kCh, [&](const ApiMessage& m) { events.push_back(m); });
  }
  ASSERT_EQ(events.size(), 10u);
  for (uint64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(events[i].event, Event::down);
    EXPECT_EQ(events[i].cookie, i);
  }
  EXPECT_EQ(p.aa->counters()[kApiDown], 10u);
  EXPECT_EQ(p.aa->counters()[kApiTimeouts], 0u);
  EXPECT_EQ(p.aa->state(0), PeerState::down);
  EXPECT_EQ(p.aa->request(0, kCh, body_of(0, 10), 0, p.now()), Send::down);
  // B's answers to the ended session go nowhere (counted).
  EXPECT_EQ(p.ab->respond(held[0].to, kCh, {}), Send::down);
  EXPECT_EQ(p.ab->counters()[kApiReplyDropped], 1u);
}

TEST(PeerApi, ASlowPeerMakesTheSenderWait) {
  NEED_CERTS();
  Pair p;
  ASSERT_TRUE(p.a->is_open(0));
  ASSERT_TRUE(p.aa->open_channel(kCh, {.max_pending = 65536}));
  ASSERT_TRUE(p.ab->open_channel(kCh, {.inbox_bytes = 0}));  // the smallest inbox
  // B's service does not poll: its inbox fills, then the stream's window, then A's send ring.
  uint64_t sent = 0;
  bool waited = false;
  for (int r = 0; r < 2000 && !waited; ++r) {
    const uint64_t before = sent;
    for (;;) {
      const Send s = p.aa->request(0, kCh, body_of(sent, 1000), sent, p.now());
      if (s == Send::wait) break;
      ASSERT_EQ(s, Send::ok);
      ++sent;
    }
    // Nothing goes for many rounds only once the peer has stopped taking bytes.
    waited = r > 100 && sent == before;
    p.round();
  }
  ASSERT_TRUE(waited);
  EXPECT_TRUE(p.ab->stalled());
  // Inbox (>= 32 KiB) + window (32 KiB) + ring (64 KiB) of 1 KiB requests, about.
  EXPECT_GT(sent, 64u);
  EXPECT_LT(sent, 200u);
  EXPECT_GT(p.aa->counters()[kApiWait], 0u);
  const uint64_t stuck = sent;

  // B's service reads again: everything sent is answered and A sends 500 more.
  uint64_t got = 0;
  Server srv;
  for (int r = 0; r < 20000 && got < stuck + 500; ++r) {
    while (sent < stuck + 500 &&
           p.aa->request(0, kCh, body_of(sent, 1000), sent, p.now()) == Send::ok)
      ++sent;
    srv.run(p, false);
    p.aa->poll(kCh, [&](const ApiMessage& m) {
      EXPECT_EQ(m.event, Event::response);
      EXPECT_EQ(m.cookie, got);
      ++got;
    });
    p.round();
  }
  EXPECT_EQ(got, stuck + 500);
  EXPECT_EQ(p.aa->counters()[kApiTimeouts], 0u);

  // The pending table bounds requests in flight too.
  Pair q;
  ASSERT_TRUE(q.aa->open_channel(kCh, {.max_pending = 4}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.aa->request(0, kCh, {}, 0, q.now()), Send::ok);
  EXPECT_EQ(q.aa->request(0, kCh, {}, 0, q.now()), Send::wait);
}

TEST(PeerApi, UnknownChannelsAreRefusedAndMalformedFramesCounted) {
  NEED_CERTS();
  Pair p;
  ASSERT_TRUE(p.a->is_open(0));
  ASSERT_TRUE(p.aa->open_channel(9));
  ASSERT_TRUE(p.aa->open_channel(kCh));
  ASSERT_TRUE(p.ab->open_channel(kCh));
  EXPECT_EQ(p.aa->request(0, 11, {}, 1, p.now()), Send::no_channel);  // not opened here
  EXPECT_EQ(p.aa->request(0, kCh, std::vector<uint8_t>(kMaxApiBody + 1), 1, p.now()),
            Send::too_large);
  // B has no channel 9: refused.
  ASSERT_EQ(p.aa->request(0, 9, body_of(1, 10), 42, p.now()), Send::ok);
  std::vector<ApiMessage> events;
  for (int i = 0; i < 20 && events.empty(); ++i) {
    p.round();
    p.aa->poll(9, [&](const ApiMessage& m) { events.push_back(m); });
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, Event::refused);
  EXPECT_EQ(events[0].cookie, 42u);
  EXPECT_EQ(p.ab->counters()[kApiNoChannel], 1u);
  EXPECT_EQ(p.aa->counters()[kApiRefused], 1u);

  // Raw frames on a stream of A's own: a request too short for its id, a response on a
  // stream that carries requests, a response with an unknown status.
  const int st = p.a->open_stream(0);
  ASSERT_GE(st, 0);
  const uint8_t two[2] = {1, 2};
  const uint8_t bad_status[5] = {0, 0, 0, 0, 9};
  ASSERT_TRUE(p.a->send_frame(0, unsigned(st), {2, FrameKind::request, kCh}, two));
  ASSERT_TRUE(p.a->send_frame(0, unsigned(st), {2, FrameKind::response, kCh}, two));
  ASSERT_TRUE(p.a->send_frame(0, unsigned(st), {5, FrameKind::response, kCh}, bad_status));
  for (int i = 0; i < 20; ++i) p.round();
  EXPECT_EQ(p.ab->counters()[kApiBad], 3u);
  EXPECT_EQ(p.ab->counters()[kApiServed], 0u);
  EXPECT_NE(p.b_slot(), UINT32_MAX);  // a malformed API frame does not end the session

  // A request answered twice: the second answer finds no pending request.
  ASSERT_EQ(p.aa->request(0, kCh, body_of(2, 10), 7, p.now()), Send::ok);
  std::vector<Held> held;
  for (int i = 0; i < 20 && held.empty(); ++i) {
    p.round();
    p.ab->poll(kCh, [&](const ApiMessage& m) { held.push_back({m.to, {}}); });
  }
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(p.ab->respond(held[0].to, kCh, {}), Send::ok);
  EXPECT_EQ(p.ab->respond(held[0].to, kCh, {}), Send::ok);
  events.clear();
  for (int i = 0; i < 20; ++i) {
    p.round();
    p.aa->poll(kCh, [&](const ApiMessage& m) { events.push_back(m); });
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, Event::response);
  EXPECT_TRUE(events[0].body.empty());
  EXPECT_EQ(p.aa->counters()[kApiLate], 1u);
}

}  // namespace
}  // namespace cw::peer
