// In-order replies per connection: early replies are held and released in request order,
// the window bounds outstanding requests, closing drops held and late replies, and an
// exhausted hold pool fails the connection visibly.
#include "app/runtime/reply_order.hh"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "dataplane/fake/fake_io.hh"

namespace cw::rt {
namespace {

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class ReplyOrderTest : public ::testing::Test {
 protected:
  std::string out(dp::ConnId c) {
    io.flush();
    auto v = io.take_stream_out(c);
    return {v.begin(), v.end()};
  }
  dp::IoConfig iocfg;
  dp::FakeWorker io{0, iocfg, 1};
  dp::ConnId c = io.inject_open(0, {htonl(0x7f000001), htons(5555)});
  ReplyOrder ro{{.max_conns = 8, .window = 4, .windows = 2, .block_bytes = 4, .blocks = 6}};
};

TEST_F(ReplyOrderTest, EarlyRepliesWaitForEarlierOnesAndGoOutInOrder) {
  EXPECT_TRUE(ro.idle(c));
  const uint32_t s0 = ro.begin(c), s1 = ro.begin(c), s2 = ro.begin(c);
  EXPECT_EQ(ro.outstanding(c), 3u);
  EXPECT_EQ(ro.reply(io, c, s2, bytes("third-reply")), Reply::held);  // 3 blocks
  EXPECT_EQ(ro.reply(io, c, s1, bytes("2nd")), Reply::held);
  EXPECT_EQ(out(c), "");
  EXPECT_EQ(ro.blocks_free(), 2u);
  EXPECT_EQ(ro.reply(io, c, s0, bytes("first,")), Reply::sent);
  EXPECT_EQ(out(c), "first,2ndthird-reply");
  EXPECT_TRUE(ro.idle(c));
  EXPECT_EQ(ro.blocks_free(), 6u);
  EXPECT_EQ(ro.windows_free(), 2u) << "an idle connection gives its window back";
  EXPECT_EQ(ro.stats().held.get(), 2u);
  EXPECT_EQ(ro.stats().direct.get(), 1u);
}

// An empty reply (a get miss among hits) that waits its turn writes nothing and leaves no
// reservation open (the fake backend asserts one reservation at a time).
TEST_F(ReplyOrderTest, HeldEmptyRepliesWriteNothing) {
  const uint32_t s0 = ro.begin(c), s1 = ro.begin(c), s2 = ro.begin(c);
  EXPECT_EQ(ro.reply(io, c, s1, bytes("")), Reply::held);
  EXPECT_EQ(ro.reply(io, c, s2, bytes("x")), Reply::held);
  EXPECT_EQ(ro.reply(io, c, s0, bytes("a")), Reply::sent);
  EXPECT_EQ(out(c), "ax");
  EXPECT_TRUE(ro.idle(c));
  EXPECT_EQ(ro.blocks_free(), 6u);
}

TEST_F(ReplyOrderTest, SequenceNumbersWrapAroundTheWindow) {
  std::string want;
  for (int i = 0; i < 20; ++i) {
    const uint32_t a = ro.begin(c), b = ro.begin(c);
    ASSERT_NE(b, ReplyOrder::kFull);
    char ra[8], rb[8];  // not string concatenation: GCC 12 -Wrestrict false positive
    snprintf(ra, sizeof ra, "a%d", i);
    snprintf(rb, sizeof rb, "b%d", i);
    EXPECT_EQ(ro.reply(io, c, b, bytes(rb)), Reply::held);
    EXPECT_EQ(ro.reply(io, c, a, bytes(ra)), Reply::sent);
    want.append(ra).append(rb);
  }
  EXPECT_EQ(out(c), want);
}

TEST_F(ReplyOrderTest, WindowAndWindowsAreBounded) {
  for (int i = 0; i < 4; ++i) EXPECT_NE(ro.begin(c), ReplyOrder::kFull);
  EXPECT_EQ(ro.begin(c), ReplyOrder::kFull) << "window of 4 requests";
  const dp::ConnId c2 = io.inject_open(0, {});
  const dp::ConnId c3 = io.inject_open(0, {});
  EXPECT_NE(ro.begin(c2), ReplyOrder::kFull);
  EXPECT_EQ(ro.begin(c3), ReplyOrder::kFull) << "two connections may have requests out";
  EXPECT_EQ(ro.stats().full.get(), 2u);
  EXPECT_EQ(ro.reply(io, c2, 0, bytes("x")), Reply::sent);
  EXPECT_NE(ro.begin(c3), ReplyOrder::kFull) << "c2's window was freed";
}

TEST_F(ReplyOrderTest, CloseDropsHeldAndLateRepliesAndFreesBlocks) {
  const uint32_t s0 = ro.begin(c), s1 = ro.begin(c), s2 = ro.begin(c);
  EXPECT_EQ(ro.reply(io, c, s1, bytes("held-one")), Reply::held);
  ro.closed(c);
  EXPECT_EQ(ro.blocks_free(), 6u);
  EXPECT_EQ(ro.windows_free(), 2u);
  EXPECT_EQ(ro.reply(io, c, s0, bytes("late")), Reply::dropped);
  EXPECT_EQ(ro.reply(io, c, s2, bytes("late")), Reply::dropped);
  EXPECT_EQ(ro.stats().dropped.get(), 3u);
  // A new connection in the same slot is not confused with the old one.
  io.inject_peer_close(c);
  const dp::ConnId n = io.inject_open(0, {});
  ASSERT_EQ(dp::conn_slot(n), dp::conn_slot(c));
  const uint32_t t0 = ro.begin(n);
  EXPECT_EQ(ro.reply(io, c, t0, bytes("stale")), Reply::dropped);
  EXPECT_EQ(ro.reply(io, n, t0, bytes("fresh")), Reply::sent);
  EXPECT_EQ(out(n), "fresh");
}

TEST_F(ReplyOrderTest, RepliesNobodyAskedForAreDropped) {
  EXPECT_EQ(ro.reply(io, c, 0, bytes("x")), Reply::dropped);
  const uint32_t s0 = ro.begin(c);
  EXPECT_EQ(ro.reply(io, c, s0 + 1, bytes("x")), Reply::dropped);
  EXPECT_EQ(ro.reply(io, c, s0, bytes("a")), Reply::sent);
  EXPECT_EQ(ro.reply(io, c, s0, bytes("again")), Reply::dropped);
  EXPECT_EQ(out(c), "a");
}

TEST_F(ReplyOrderTest, ExhaustedHoldPoolFailsTheConnection) {
  const uint32_t s0 = ro.begin(c), s1 = ro.begin(c), s2 = ro.begin(c);
  EXPECT_EQ(ro.reply(io, c, s1, bytes("0123456789abcdef")), Reply::held);  // 4 blocks
  EXPECT_EQ(ro.reply(io, c, s2, bytes("0123456789")), Reply::failed);      // needs 3 of 2
  EXPECT_EQ(ro.stats().no_buffer.get(), 1u);
  EXPECT_EQ(ro.blocks_free(), 6u) << "a failed connection holds nothing";
  EXPECT_EQ(ro.begin(c), ReplyOrder::kFull);
  EXPECT_EQ(ro.reply(io, c, s0, bytes("late")), Reply::dropped);
  ro.closed(c);
  EXPECT_EQ(ro.windows_free(), 2u);
}

}  // namespace
}  // namespace cw::rt
