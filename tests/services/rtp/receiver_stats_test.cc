// RFC 3550 A.1 / A.3 / A.8 against hand-computed sequences. A.1 counts nothing until two
// packets arrive in sequence: the first packet of a source is in probation, the second
// becomes base_seq and the first one counted.
#include "app/services/rtp/receiver_stats.hh"

#include <gtest/gtest.h>

#include <initializer_list>

namespace cw::rtp {
namespace {

// A source started at `first`, fed `first` and then each of `rest`.
ReceiverStats feed(uint16_t first, std::initializer_list<uint16_t> rest) {
  ReceiverStats s;
  s.start(first);
  s.update(first);
  for (uint16_t q : rest) s.update(q);
  return s;
}

ReceiverStats run(uint16_t from, uint16_t to) {  // from..to inclusive, in order
  ReceiverStats s;
  s.start(from);
  for (uint32_t q = from; q <= to; ++q) s.update(static_cast<uint16_t>(q));
  return s;
}

TEST(SeqProbation, TwoInSequenceMakeASourceValid) {
  ReceiverStats s;
  s.start(100);
  EXPECT_EQ(s.update(100), SeqResult::probation);
  EXPECT_FALSE(s.valid());
  EXPECT_EQ(s.update(101), SeqResult::valid);
  EXPECT_TRUE(s.valid());
  EXPECT_EQ(s.received(), 1u);
  EXPECT_EQ(s.expected(), 1u);
}

TEST(SeqProbation, OutOfSequenceRestartsProbation) {
  ReceiverStats s;
  s.start(100);
  EXPECT_EQ(s.update(100), SeqResult::probation);
  EXPECT_EQ(s.update(200), SeqResult::probation);  // not 101: probation again from 200
  EXPECT_EQ(s.update(202), SeqResult::probation);
  EXPECT_EQ(s.update(203), SeqResult::valid);
  EXPECT_EQ(s.received(), 1u);
  EXPECT_EQ(s.ext_max(), 203u);
  EXPECT_EQ(s.expected(), 1u);
}

TEST(SeqProbation, StraddlingTheWrap) {
  ReceiverStats s;
  s.start(65535);
  EXPECT_EQ(s.update(65535), SeqResult::probation);
  EXPECT_EQ(s.update(0), SeqResult::valid);
  EXPECT_EQ(s.expected(), 1u);
}

TEST(SeqLoss, InOrderNoLoss) {
  ReceiverStats s = run(100, 199);
  const LossReport r = s.report();
  EXPECT_EQ(s.received(), 99u);  // 101..199
  EXPECT_EQ(r.expected, 99u);
  EXPECT_EQ(r.cumulative_lost, 0);
  EXPECT_EQ(r.fraction_lost, 0);
  EXPECT_EQ(r.ext_highest_seq, 199u);
}

TEST(SeqLoss, TwoLost) {
  ReceiverStats s;
  s.start(100);
  for (uint16_t q = 100; q <= 199; ++q)
    if (q != 150 && q != 151) s.update(q);
  const LossReport r = s.report();
  EXPECT_EQ(r.expected, 99u);
  EXPECT_EQ(s.received(), 97u);
  EXPECT_EQ(r.cumulative_lost, 2);
  EXPECT_EQ(r.fraction_lost, 5);  // 2 * 256 / 99 = 5.17
}

TEST(SeqLoss, FractionIsPerInterval) {
  ReceiverStats s = run(0, 50);  // 1..50 counted
  LossReport r = s.report();
  EXPECT_EQ(r.fraction_lost, 0);
  // Next interval: 51..100 with 10 lost: 10 * 256 / 50 = 51.2.
  for (uint16_t q = 51; q <= 100; ++q)
    if (q % 5 != 1) s.update(q);  // 51, 56, ..., 96 lost
  r = s.report();
  EXPECT_EQ(r.expected, 100u);
  EXPECT_EQ(r.cumulative_lost, 10);
  EXPECT_EQ(r.fraction_lost, 51);
  // An interval with nothing new expected reports 0, the cumulative loss stays.
  r = s.report();
  EXPECT_EQ(r.fraction_lost, 0);
  EXPECT_EQ(r.cumulative_lost, 10);
  // An interval where everything was lost: 256 does not fit the octet, 255 is reported.
  for (uint16_t q = 101; q <= 110; ++q) s.update(q);  // 10 received
  s.report();
  s.update(120);  // 111..119 lost, 120 received: 9 of 10 lost: 230.4
  r = s.report();
  EXPECT_EQ(r.fraction_lost, 230);
}

TEST(SeqLoss, DuplicatesMakeLossNegative) {
  ReceiverStats s = feed(100, {101, 102, 103, 104, 105, 105, 106, 107, 108, 109, 110});
  const LossReport r = s.report();
  EXPECT_EQ(s.received(), 11u);
  EXPECT_EQ(r.expected, 10u);
  EXPECT_EQ(r.cumulative_lost, -1);
  EXPECT_EQ(r.fraction_lost, 0);
}

TEST(SeqLoss, ReorderIsNotLoss) {
  ReceiverStats s = feed(100, {101, 102, 104, 103, 105});
  EXPECT_EQ(s.received(), 5u);
  EXPECT_EQ(s.ext_max(), 105u);
  EXPECT_EQ(s.report().cumulative_lost, 0);
  // A late packet from before base_seq within kMaxMisorder: counted, max unchanged.
  EXPECT_EQ(s.update(100), SeqResult::valid);
  EXPECT_EQ(s.ext_max(), 105u);
  EXPECT_EQ(s.report().cumulative_lost, -1);
}

TEST(SeqWrap, CyclesCount) {
  ReceiverStats s = feed(65530, {65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(s.ext_max(), 65536u + 9);
  EXPECT_EQ(s.received(), 15u);  // 65531..65535, 0..9
  const LossReport r = s.report();
  EXPECT_EQ(r.expected, 15u);
  EXPECT_EQ(r.cumulative_lost, 0);
  EXPECT_EQ(r.ext_highest_seq, 0x10009u);
  // A reordered packet from before the wrap does not add a cycle.
  EXPECT_EQ(s.update(65534), SeqResult::valid);
  EXPECT_EQ(s.ext_max(), 0x10009u);
}

TEST(SeqWrap, LossAcrossTheWrap) {
  ReceiverStats s = feed(65533, {65534, 65535, 2, 3});  // 0 and 1 lost
  EXPECT_EQ(s.ext_max(), 65536u + 3);
  EXPECT_EQ(s.report().cumulative_lost, 2);
}

TEST(SeqJump, LargeJumpIsBadUnlessFollowed) {
  ReceiverStats s = run(1000, 1010);  // 1001..1010 counted
  EXPECT_EQ(s.update(20000), SeqResult::bad);
  EXPECT_EQ(s.received(), 10u);
  EXPECT_EQ(s.update(1011), SeqResult::valid);  // the stream goes on
  EXPECT_EQ(s.received(), 11u);
  // A restart: the packet after the jump follows it, statistics restart there.
  EXPECT_EQ(s.update(30000), SeqResult::bad);
  EXPECT_EQ(s.update(30001), SeqResult::valid);
  EXPECT_EQ(s.received(), 1u);
  EXPECT_EQ(s.expected(), 1u);
  EXPECT_EQ(s.ext_max(), 30001u);
}

TEST(SeqJump, DropoutBoundaries) {
  // udelta < 3000 is a gap; udelta in [3000, 65536 - 100] a jump; above, a reorder.
  ReceiverStats s = run(10000, 10001);
  EXPECT_EQ(s.update(10001 + 2999), SeqResult::valid);
  EXPECT_EQ(s.ext_max(), 13000u);
  EXPECT_EQ(s.update(13000 + 3000), SeqResult::bad);
  EXPECT_EQ(s.update(13000 - 99), SeqResult::valid);  // 65437 behind: reorder
  EXPECT_EQ(s.update(13000 - 100), SeqResult::bad);   // 65436: a jump
  EXPECT_EQ(s.ext_max(), 13000u);
}

TEST(Jitter, ConstantTransitIsZero) {
  ReceiverStats s;
  for (uint32_t i = 0; i < 100; ++i) s.update_jitter(5000 + i * 160, i * 160);
  EXPECT_EQ(s.jitter(), 0u);
}

TEST(Jitter, HandComputed) {
  // Transit times 0, 160, 0, 160: |D| = 160 each time. Scaled by 16:
  // J1 = 0 + 160 - 0 = 160 (10), J2 = 160 + 160 - 10 = 310 (19), J3 = 310 + 160 - 19 = 451
  // (28). The floating form J += (|D| - J) / 16 gives 10, 19.375, 28.16.
  ReceiverStats s;
  s.update_jitter(0, 0);
  EXPECT_EQ(s.jitter(), 0u);
  s.update_jitter(320, 160);
  EXPECT_EQ(s.jitter(), 10u);
  s.update_jitter(320, 320);
  EXPECT_EQ(s.jitter(), 19u);
  s.update_jitter(640, 480);
  EXPECT_EQ(s.jitter(), 28u);
}

TEST(Jitter, ConvergesToMeanAbsoluteDifference) {
  // Alternating transit 0, 80: |D| = 80 always, J converges to 80 (within the integer form's
  // rounding).
  ReceiverStats s;
  for (uint32_t i = 0; i < 400; ++i) s.update_jitter(i * 160 + (i % 2) * 80, i * 160);
  EXPECT_GE(s.jitter(), 79u);
  EXPECT_LE(s.jitter(), 80u);
}

TEST(Jitter, TimestampWrapIsNotJitter) {
  ReceiverStats s;
  const uint32_t t0 = 0xffffff00u;
  for (uint32_t i = 0; i < 10; ++i) s.update_jitter(t0 + 77 + i * 160, t0 + i * 160);
  EXPECT_EQ(s.jitter(), 0u);
}

TEST(Jitter, RestartOnStart) {
  ReceiverStats s;
  s.update_jitter(0, 0);
  s.update_jitter(1000, 0);
  EXPECT_GT(s.jitter(), 0u);
  s.start(1);
  EXPECT_EQ(s.jitter(), 0u);
  s.update_jitter(5000, 0);  // only records the transit
  EXPECT_EQ(s.jitter(), 0u);
}

}  // namespace
}  // namespace cw::rtp
