// The jitter buffer with a fake clock: arrival times are chosen by the test (RTP units of an
// 8 kHz stream, 160 per 20 ms packet), with injected jitter, reorders, duplicates and losses.
#include "app/services/rtp/jitter_buffer.hh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace cw::rtp {
namespace {

constexpr uint32_t kPkt = 160;      // one 20 ms packet at 8 kHz
constexpr uint32_t kTs0 = 4000000;  // arbitrary start timestamp
constexpr uint32_t kTransit = 12345;

uint32_t ts_of(uint32_t i) {
  return kTs0 + i * kPkt;
}
// Arrival of packet i sent on time with a network delay of `extra` units.
uint32_t at(uint32_t i, uint32_t extra = 0) {
  return ts_of(i) + kTransit + extra;
}

TEST(JitterBuffer, SteadyStreamPlaysEverythingAtTheMinimumDelay) {
  JitterBuffer jb(playout_for(8000));
  for (uint32_t i = 0; i < 200; ++i)
    EXPECT_EQ(jb.add(uint16_t(65500 + i), ts_of(i), at(i)), Playout::held) << i;  // wraps
  EXPECT_EQ(jb.delay(), 160u);
  EXPECT_EQ(jb.jitter(), 0u);
  // Packet i plays at at(i) + 160, i.e. when packet i + 1 arrives: one is held.
  EXPECT_EQ(jb.held(), 1u);
  EXPECT_EQ(jb.release(at(199) + 159), 0u);
  EXPECT_EQ(jb.release(at(199) + 160), 1u);
  const JitterCounts& c = jb.counts();
  EXPECT_EQ(c.played, 200u);
  EXPECT_EQ(c.late + c.duplicates + c.reordered + c.concealed + c.resyncs, 0u);
}

TEST(JitterBuffer, DuplicatesAreDroppedAndCounted) {
  JitterBuffer jb(playout_for(8000));
  for (uint32_t i = 0; i < 10; ++i) jb.add(uint16_t(i), ts_of(i), at(i));
  EXPECT_EQ(jb.add(9, ts_of(9), at(9, 10)), Playout::duplicate);  // still held
  EXPECT_EQ(jb.add(3, ts_of(3), at(9, 20)), Playout::duplicate);  // played already
  EXPECT_EQ(jb.counts().duplicates, 2u);
  EXPECT_EQ(jb.counts().late, 0u);
}

TEST(JitterBuffer, AReorderWithinTheDelayIsPlayedInOrder) {
  JitterBuffer jb(playout_for(8000));
  jb.add(0, ts_of(0), at(0));
  jb.add(1, ts_of(1), at(1));
  jb.add(3, ts_of(3), at(3));
  // 2 arrives after 3 but before its playout time (at(2) + 160 at least).
  EXPECT_EQ(jb.add(2, ts_of(2), at(2, 150)), Playout::held);
  jb.add(4, ts_of(4), at(4));
  jb.release(at(4) + 1600);
  const JitterCounts& c = jb.counts();
  EXPECT_EQ(c.reordered, 1u);
  EXPECT_EQ(c.late, 0u);
  EXPECT_EQ(c.concealed, 0u);
  EXPECT_EQ(c.played, 5u);
}

TEST(JitterBuffer, LatePacketsAreCountedAndTheirSlotConcealed) {
  JitterBuffer jb(playout_for(8000));
  for (uint32_t i = 0; i < 5; ++i) jb.add(uint16_t(i), ts_of(i), at(i));
  // 5 is 300 units late (more than the 160 delay) but arrives before 6: late by its time.
  EXPECT_EQ(jb.add(5, ts_of(5), at(5, 300)), Playout::late);
  jb.add(6, ts_of(6), at(6, 300));  // late too: same network delay
  // 7 arrives on time; 8 is lost; 9 on time, then 8 arrives after 9's playout: late, played
  // past.
  jb.add(7, ts_of(7), at(7));
  jb.add(9, ts_of(9), at(9));
  jb.add(10, ts_of(10), at(10));
  EXPECT_EQ(jb.add(8, ts_of(8), at(10, 100)), Playout::late);
  jb.release(at(10) + 1600);
  const JitterCounts& c = jb.counts();
  EXPECT_EQ(c.late, 3u);
  EXPECT_EQ(c.reordered, 1u);  // 8 behind 10
  EXPECT_EQ(c.concealed, 3u);  // 5, 6, 8 had nothing to play
  EXPECT_EQ(c.played, 8u);     // 0..4, 7, 9, 10
  EXPECT_EQ(c.duplicates, 0u);
}

// xorshift: deterministic injected jitter.
struct Prng {
  uint64_t s = 88172645463325252ull;
  uint32_t below(uint32_t n) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return uint32_t(s % n);
  }
};

TEST(JitterBuffer, DelayAdaptsToInjectedJitter) {
  // Network delays uniform on [0, J], J three packet times: packets overtake each other, and
  // arrive (are added) in arrival order. A.8's estimate over consecutive arrivals is then
  // about 0.36 J (J/3 without reordering), so the delay, 4 x that, covers every delay once
  // the estimate has converged.
  constexpr uint32_t kJ = 480;  // 60 ms
  constexpr uint32_t kN = 3000;
  Prng r;
  std::vector<std::pair<uint32_t, uint32_t>> arrivals;  // (arrival, packet)
  for (uint32_t i = 0; i < kN; ++i) arrivals.emplace_back(at(i, r.below(kJ + 1)), i);
  std::sort(arrivals.begin(), arrivals.end());
  JitterBuffer jb(playout_for(8000));
  uint64_t late_after_warmup = 0;
  double jitter_sum = 0, delay_sum = 0;  // the estimate is a 1/16 moving average: average it
  for (uint32_t k = 0; k < kN; ++k) {
    const auto [arrival, i] = arrivals[k];
    const Playout p = jb.add(uint16_t(i), ts_of(i), arrival);
    EXPECT_NE(p, Playout::duplicate);
    EXPECT_NE(p, Playout::resync);
    if (k >= 500 && p == Playout::late) ++late_after_warmup;
    if (k >= 500) {
      jitter_sum += jb.jitter();
      delay_sum += jb.delay();
    }
  }
  EXPECT_NEAR(jitter_sum / (kN - 500), 0.36 * kJ, 0.36 * kJ * 0.15);
  EXPECT_NEAR(delay_sum / (kN - 500), 4 * 0.36 * kJ, 4 * 0.36 * kJ * 0.15);
  EXPECT_LE(late_after_warmup, kN / 100);
  EXPECT_GT(jb.counts().late, 0u);  // the warm-up at 20 ms could not cover 60 ms
  EXPECT_GT(jb.counts().reordered, 0u);
  const JitterCounts& c = jb.counts();
  EXPECT_EQ(c.played + c.late + jb.held(), kN);
}

TEST(JitterBuffer, DelayIsBounded) {
  JitterBuffer jb(playout_for(8000));
  Prng r;
  for (uint32_t i = 0; i < 1000; ++i) jb.add(uint16_t(i), ts_of(i), at(i, r.below(8000)));
  EXPECT_EQ(jb.delay(), 1600u);  // 200 ms, though 4 x jitter is far more
  JitterBuffer quiet(playout_for(8000));
  for (uint32_t i = 0; i < 100; ++i) quiet.add(uint16_t(i), ts_of(i), at(i, i % 2));
  EXPECT_EQ(quiet.delay(), 160u);  // 20 ms, though 4 x jitter is ~4 units
}

TEST(JitterBuffer, AJumpResyncsAndAnSsrcChangeRestarts) {
  JitterBuffer jb(playout_for(8000));
  for (uint32_t i = 0; i < 5; ++i) jb.add(uint16_t(i), ts_of(i), at(i));
  EXPECT_EQ(jb.add(1000, ts_of(1000), at(1000)), Playout::resync);
  EXPECT_EQ(jb.counts().resyncs, 1u);
  EXPECT_EQ(jb.counts().played, 5u);  // what was held played at the jump
  EXPECT_EQ(jb.add(1001, ts_of(1001), at(1001)), Playout::held);
  jb.restart();
  EXPECT_EQ(jb.held(), 0u);
  EXPECT_EQ(jb.add(7, 99, 99 + 5), Playout::held);  // a new stream: new base, no duplicate
  EXPECT_EQ(jb.counts().duplicates, 0u);
  EXPECT_EQ(jb.counts().late, 0u);
}

// A jump of about half the sequence space reads as ahead of the highest but behind the next
// to play: it resyncs, so no slot is filled twice and every packet is accounted for.
TEST(JitterBuffer, AHalfRangeJumpResyncs) {
  JitterBuffer jb(playout_for(8000));
  EXPECT_EQ(jb.add(0, 0, 0), Playout::held);
  EXPECT_EQ(jb.add(50, 0xffffff00, 0x03ffffff), Playout::late);
  EXPECT_EQ(jb.add(32771, 0, 0), Playout::resync);
  EXPECT_EQ(jb.add(0, 0xda11f600, 0xc613da11), Playout::resync);
  jb.release(0xc613da11 + 1600);
  const JitterCounts& k = jb.counts();
  EXPECT_EQ(k.played + k.late + k.duplicates + jb.held(), 4u);
  EXPECT_EQ(jb.held(), 0u);
}

TEST(JitterBuffer, OldPacketsBeyondTheWindowAreLate) {
  JitterBuffer jb(playout_for(8000));
  for (uint32_t i = 0; i < 400; ++i) jb.add(uint16_t(i), ts_of(i), at(i));
  EXPECT_EQ(jb.add(10, ts_of(10), at(399)), Playout::late);
  EXPECT_EQ(jb.add(390, ts_of(390), at(399)), Playout::duplicate);
  EXPECT_EQ(jb.counts().late, 1u);
}

}  // namespace
}  // namespace cw::rtp
