// The timer wheel alone: order, never early and at most a tick late, cancel and rearm (also
// from the firing callback), stale ids, a full pool, budgets, 100 k timers, and timers far
// enough out to cascade through every level or beyond the top one.
#include "app/runtime/timer_wheel.hh"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace cw::rt {
namespace {

constexpr uint64_t kTick = uint64_t{1} << TimerWheel::kTickShift;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = 1'000'000'000'000;  // an arbitrary start, not tick-aligned below
constexpr uint64_t kStart = kT0 + 12345;

struct Fired {
  TimerId id;
  uint16_t owner;
  uint64_t user;
  uint64_t at_ns;  // the advance() time it fired at
};

struct Harness {
  explicit Harness(uint32_t cap) : w(cap, kStart) {}
  uint32_t advance(uint64_t now, uint32_t budget = ~0u) {
    return w.advance(now, budget, [&](TimerId id, uint16_t o, uint64_t u) {
      fired.push_back({id, o, u, now});
    });
  }
  TimerWheel w;
  std::vector<Fired> fired;
};

TEST(TimerWheel, FiresInDeadlineOrderNeverEarlyAtMostATickLate) {
  Harness h(1000);
  std::mt19937_64 rng(7);
  std::map<uint64_t, uint64_t> deadline;  // user -> t
  for (uint64_t u = 0; u < 1000; ++u) {
    const uint64_t t = kStart + rng() % (3000 * kMs);  // up to 3 s: levels 0..2
    deadline[u] = t;
    ASSERT_NE(h.w.schedule(t, 1, u), kNoTimer);
  }
  for (uint64_t now = kStart; now <= kStart + 3100 * kMs; now += 100'000) h.advance(now);
  ASSERT_EQ(h.fired.size(), 1000u);
  EXPECT_EQ(h.w.pending(), 0u);
  EXPECT_EQ(h.w.next_ns(), TimerWheel::kNever);
  uint64_t last_tick = 0;
  for (const Fired& f : h.fired) {
    const uint64_t t = deadline[f.user];
    EXPECT_GE(f.at_ns, t) << "never early";
    EXPECT_LE(f.at_ns, t + kTick + 100'000) << "at most a tick (plus the step) late";
    const uint64_t tick = (t + kTick - 1) / kTick;
    EXPECT_GE(tick, last_tick) << "in deadline order";
    last_tick = tick;
    EXPECT_EQ(f.owner, 1u);
  }
}

TEST(TimerWheel, CancelledTimersDoNotFireAndStaleIdsAreRefused) {
  Harness h(8);
  const TimerId a = h.w.schedule(kStart + 5 * kMs, 0, 1);
  const TimerId b = h.w.schedule(kStart + 5 * kMs, 0, 2);
  const TimerId c = h.w.schedule(kStart + 2000 * kMs, 0, 3);  // level 1
  EXPECT_TRUE(h.w.cancel(a));
  EXPECT_FALSE(h.w.cancel(a)) << "twice";
  EXPECT_TRUE(h.w.cancel(c));
  EXPECT_FALSE(h.w.cancel(kNoTimer));
  // a's node is reused: the old id must not name the new timer.
  const TimerId d = h.w.schedule(kStart + 6 * kMs, 0, 4);
  EXPECT_NE(d, a);
  EXPECT_FALSE(h.w.cancel(a));
  EXPECT_FALSE(h.w.rearm(a, kStart));
  h.advance(kStart + 3000 * kMs);
  ASSERT_EQ(h.fired.size(), 2u);
  EXPECT_EQ(h.fired[0].user, 2u);
  EXPECT_EQ(h.fired[1].user, 4u);
  EXPECT_FALSE(h.w.cancel(b)) << "already fired";
  EXPECT_FALSE(h.w.rearm(d, kStart + 4000 * kMs)) << "already fired";
}

TEST(TimerWheel, RearmMovesATimerEitherWay) {
  Harness h(4);
  const TimerId a = h.w.schedule(kStart + 1000 * kMs, 0, 1);
  const TimerId b = h.w.schedule(kStart + 2 * kMs, 0, 2);
  EXPECT_TRUE(h.w.rearm(a, kStart + 1 * kMs));     // earlier: level 1 -> level 0
  EXPECT_TRUE(h.w.rearm(b, kStart + 5000 * kMs));  // later: level 0 -> level 2
  h.advance(kStart + 10 * kMs);
  ASSERT_EQ(h.fired.size(), 1u);
  EXPECT_EQ(h.fired[0].id, a);
  h.advance(kStart + 4999 * kMs);
  EXPECT_EQ(h.fired.size(), 1u);
  h.advance(kStart + 5001 * kMs);
  ASSERT_EQ(h.fired.size(), 2u);
  EXPECT_EQ(h.fired[1].id, b);
}

TEST(TimerWheel, RearmFromTheCallbackIsPeriodicAndCancelFromItStops) {
  TimerWheel w(2, kStart);
  const TimerId id = w.schedule(kStart + 20 * kMs, 0, 0);
  std::vector<uint64_t> at;
  for (uint64_t now = kStart; now < kStart + 205 * kMs; now += kMs / 4) {
    w.advance(now, 100, [&](TimerId f, uint16_t, uint64_t) {
      EXPECT_EQ(f, id) << "the same id each period";
      at.push_back(now);
      if (at.size() < 5)
        EXPECT_TRUE(w.rearm(f, kStart + 20 * kMs * (at.size() + 1)));
      else
        EXPECT_TRUE(w.cancel(f));
    });
  }
  ASSERT_EQ(at.size(), 5u);
  for (size_t i = 0; i < at.size(); ++i) {
    EXPECT_GE(at[i], kStart + 20 * kMs * (i + 1));
    EXPECT_LE(at[i], kStart + 20 * kMs * (i + 1) + kTick + kMs / 4);
  }
  EXPECT_EQ(w.pending(), 0u);
  EXPECT_FALSE(w.cancel(id));
}

TEST(TimerWheel, FullPoolRefusesUntilATimerIsDone) {
  Harness h(3);
  for (uint64_t u = 0; u < 3; ++u) EXPECT_NE(h.w.schedule(kStart + kMs, 0, u), kNoTimer);
  EXPECT_EQ(h.w.schedule(kStart + kMs, 0, 9), kNoTimer);
  h.advance(kStart + 2 * kMs);
  EXPECT_EQ(h.fired.size(), 3u);
  EXPECT_NE(h.w.schedule(kStart + kMs, 0, 9), kNoTimer);
}

TEST(TimerWheel, PastDeadlineFiresAtTheNextAdvanceWithoutTimeMoving) {
  Harness h(2);
  h.advance(kStart + 50 * kMs);
  h.w.schedule(kStart, 0, 1);  // already past
  EXPECT_LE(h.w.next_ns(), kStart + 50 * kMs) << "due now";
  h.advance(kStart + 50 * kMs);
  ASSERT_EQ(h.fired.size(), 1u);
}

TEST(TimerWheel, BudgetLeavesTheRestForTheNextCall) {
  Harness h(16);
  for (uint64_t u = 0; u < 10; ++u) h.w.schedule(kStart + kMs + u * 1000, 0, u);
  EXPECT_EQ(h.advance(kStart + 5 * kMs, 4), 4u);
  EXPECT_LE(h.w.next_ns(), kStart + 5 * kMs) << "the rest is due";
  EXPECT_EQ(h.advance(kStart + 5 * kMs, 4), 4u);
  EXPECT_EQ(h.advance(kStart + 5 * kMs, 4), 2u);
  EXPECT_EQ(h.w.pending(), 0u);
}

TEST(TimerWheel, NextNsIsALowerBoundThatSkipsEmptyTicks) {
  Harness h(4);
  const uint64_t t = kStart + 10 * kMs;
  h.w.schedule(t, 0, 1);
  EXPECT_LE(h.w.next_ns(), t + kTick);
  EXPECT_GT(h.w.next_ns(), kStart);
  h.advance(kStart + 5 * kMs);
  EXPECT_TRUE(h.fired.empty());
  EXPECT_GE(h.w.next_ns(), t - kTick);
  EXPECT_LE(h.w.next_ns(), t + kTick);
  // A far timer: the bound is its level's cascade, not every tick until then.
  Harness f(4);
  f.w.schedule(kStart + 60'000 * kMs, 0, 1);  // a minute: level 2
  EXPECT_GT(f.w.next_ns(), kStart + 1000 * kMs);
  EXPECT_LE(f.w.next_ns(), kStart + 60'000 * kMs);
}

TEST(TimerWheel, HundredThousandTimersAllFireOnTime) {
  constexpr uint32_t kN = 100'000;
  TimerWheel w(kN, kStart);
  std::mt19937_64 rng(11);
  std::vector<uint64_t> deadline(kN);
  std::vector<TimerId> ids(kN);
  for (uint32_t u = 0; u < kN; ++u) {
    deadline[u] = kStart + rng() % (600'000 * kMs);  // within ten minutes
    ids[u] = w.schedule(deadline[u], 0, u);
    ASSERT_NE(ids[u], kNoTimer);
  }
  // Every tenth is cancelled, every tenth (other) moved by up to a minute.
  std::vector<bool> cancelled(kN);
  for (uint32_t u = 0; u < kN; u += 10) {
    ASSERT_TRUE(w.cancel(ids[u]));
    cancelled[u] = true;
  }
  for (uint32_t u = 5; u < kN; u += 10) {
    deadline[u] = kStart + rng() % (660'000 * kMs);
    ASSERT_TRUE(w.rearm(ids[u], deadline[u]));
  }
  std::vector<uint8_t> seen(kN);
  uint32_t bad = 0, fired = 0;
  constexpr uint64_t kStep = 10 * kMs;
  for (uint64_t now = kStart; w.pending(); now += kStep) {
    ASSERT_LT(now, kStart + 700'000 * kMs);
    fired += w.advance(now, kN, [&](TimerId, uint16_t, uint64_t u) {
      if (cancelled[u] || seen[u]++ || now < deadline[u] || now > deadline[u] + kTick + kStep)
        ++bad;
    });
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(fired, kN - kN / 10);
}

TEST(TimerWheel, FarFutureTimersCascadeThroughEveryLevel) {
  Harness h(8);
  const uint64_t hour = 3'600'000 * kMs, day = 24 * hour;
  const uint64_t at[] = {kStart + 90'000 * kMs, kStart + hour, kStart + 10 * day,
                         kStart + 150 * day, kStart + 400 * day /* beyond the top level */};
  for (uint64_t u = 0; u < std::size(at); ++u) h.w.schedule(at[u], 0, u);
  // Big jumps (an idle worker), each stopping just short of a deadline, then on it.
  for (uint64_t u = 0; u < std::size(at); ++u) {
    h.advance(at[u] - kTick - 1);
    EXPECT_EQ(h.fired.size(), u) << "not before " << u;
    h.advance(at[u] + kTick);
    ASSERT_EQ(h.fired.size(), u + 1) << u;
    EXPECT_EQ(h.fired[u].user, u);
  }
  EXPECT_EQ(h.w.pending(), 0u);
}

TEST(TimerWheel, FarFutureTimerFiresWhenStepped) {
  // The same 400-day timer reached by many small steps (every cascade on the way).
  TimerWheel w(1, kStart);
  const uint64_t t = kStart + 400ull * 24 * 3'600'000 * kMs;
  w.schedule(t, 0, 0);
  uint64_t fired_at = 0;
  uint64_t steps = 0;
  for (uint64_t now = kStart; !fired_at; now = std::max(now + kTick, w.next_ns()), ++steps) {
    ASSERT_LT(now, t + 2 * kTick);
    w.advance(now, 1, [&](TimerId, uint16_t, uint64_t) { fired_at = now; });
  }
  EXPECT_GE(fired_at, t);
  EXPECT_LT(steps, 1000u) << "next_ns lets an idle loop skip empty ticks";
}

}  // namespace
}  // namespace cw::rt
