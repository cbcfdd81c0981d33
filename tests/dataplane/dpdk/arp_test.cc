#include "dataplane/dpdk/net/arp.hh"

#include <gtest/gtest.h>

#include <vector>

#include "tests/dataplane/dpdk/frames.hh"

namespace cw::dp::net {
namespace {

using namespace test;

const Mac kOtherMac{0x02, 0, 0, 0, 0, 0x77};

ArpPacket pkt(uint16_t op, const Mac& sha, const char* spa, const char* tpa) {
  ArpPacket a;
  a.op = op;
  a.sha = sha;
  a.spa_be = ip(spa);
  a.tpa_be = ip(tpa);
  return a;
}

struct ArpFixture : ::testing::Test {
  Interface ifc = test_interface();
  ArpTable table{16};
  ArpPolicy policy;
  ArpDecision input(const ArpPacket& a, int64_t now = 0) {
    return arp_input(a, a.sha, ifc, table, policy, now);
  }
};

TEST_F(ArpFixture, AnswersRequestsForOurAddressAndLearnsRequester) {
  auto d = input(pkt(kArpRequest, kPeerMac, "10.0.0.1", "10.0.0.2"));
  EXPECT_TRUE(d.reply);
  EXPECT_EQ(d.drop, DropReason::count);
  auto r = table.lookup(ip("10.0.0.1"), 1);
  EXPECT_EQ(r.status, ArpLookup::hit);
  EXPECT_EQ(r.mac, kPeerMac);
}

TEST_F(ArpFixture, RequesterNotLearnedWhenPolicySaysSo) {
  policy.learn_from_requests = false;
  EXPECT_TRUE(input(pkt(kArpRequest, kPeerMac, "10.0.0.1", "10.0.0.2")).reply);
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(ArpFixture, RequestForAnotherHostIsNotForUs) {
  auto d = input(pkt(kArpRequest, kPeerMac, "10.0.0.1", "10.0.0.3"));
  EXPECT_FALSE(d.reply);
  EXPECT_EQ(d.drop, DropReason::arp_not_for_us);
  EXPECT_EQ(table.size(), 0u);  // and nothing learned from it
}

TEST_F(ArpFixture, UnsolicitedReplyIsNeverLearned) {
  auto d = input(pkt(kArpReply, kPeerMac, "10.0.0.1", "10.0.0.2"));
  EXPECT_EQ(d.drop, DropReason::arp_unsolicited_reply);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.lookup(ip("10.0.0.1"), 0).status, ArpLookup::miss_request);
}

TEST_F(ArpFixture, UnsolicitedReplyCannotOverwriteAKnownEntry) {
  // Resolve properly, then an attacker's reply for the same IP arrives.
  ASSERT_EQ(table.lookup(ip("10.0.0.1"), 0).status, ArpLookup::miss_request);
  EXPECT_EQ(input(pkt(kArpReply, kPeerMac, "10.0.0.1", "10.0.0.2")).drop, DropReason::count);
  EXPECT_EQ(input(pkt(kArpReply, kOtherMac, "10.0.0.1", "10.0.0.2")).drop,
            DropReason::arp_unsolicited_reply);
  EXPECT_EQ(table.lookup(ip("10.0.0.1"), 1).mac, kPeerMac);
}

TEST_F(ArpFixture, GratuitousArpIsIgnored) {
  // Gratuitous request/reply: spa == tpa == the sender's own (not our) address.
  EXPECT_EQ(input(pkt(kArpRequest, kOtherMac, "10.0.0.1", "10.0.0.1")).drop,
            DropReason::arp_not_for_us);
  EXPECT_EQ(input(pkt(kArpReply, kOtherMac, "10.0.0.1", "10.0.0.1")).drop,
            DropReason::arp_not_for_us);
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(ArpFixture, BadSenders) {
  EXPECT_EQ(input(pkt(kArpRequest, kBroadcastMac, "10.0.0.1", "10.0.0.2")).drop,
            DropReason::arp_bad_sender);
  EXPECT_EQ(input(pkt(kArpRequest, kZeroMac, "10.0.0.1", "10.0.0.2")).drop,
            DropReason::arp_bad_sender);
  EXPECT_EQ(input(pkt(kArpRequest, kPeerMac, "224.0.0.1", "10.0.0.2")).drop,
            DropReason::arp_bad_sender);
  EXPECT_EQ(input(pkt(kArpRequest, kPeerMac, "10.0.0.255", "10.0.0.2")).drop,
            DropReason::arp_bad_sender);
  // Someone claiming our own address: never answered.
  auto d = input(pkt(kArpRequest, kPeerMac, "10.0.0.2", "10.0.0.2"));
  EXPECT_EQ(d.drop, DropReason::arp_bad_sender);
  EXPECT_FALSE(d.reply);
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(ArpFixture, ProbeIsAnsweredNotLearned) {
  auto d = input(pkt(kArpRequest, kPeerMac, "0.0.0.0", "10.0.0.2"));
  EXPECT_TRUE(d.reply);
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(ArpFixture, LinkUpRetransmitsPendingRequestsAtOnce) {
  const uint32_t nh = ip("10.0.0.9");
  EXPECT_EQ(table.lookup(nh, 0).status, ArpLookup::miss_request);  // lost: link was down
  int retransmits = 0;
  auto count = [&](uint32_t, ArpEvent e) { retransmits += e == ArpEvent::retransmit; };
  table.run_timers(10, count);
  EXPECT_EQ(retransmits, 0);
  table.retry_pending_now(10);
  table.run_timers(10, count);
  EXPECT_EQ(retransmits, 1);
  table.run_timers(11, count);  // the normal retry interval applies again
  EXPECT_EQ(retransmits, 1);
  EXPECT_TRUE(table.on_reply(nh, kPeerMac, 12));
  table.retry_pending_now(13);  // nothing pending: no effect
  table.run_timers(13, count);
  EXPECT_EQ(retransmits, 1);
}

TEST_F(ArpFixture, LookupRetransmitsThenFails) {
  const uint32_t nh = ip("10.0.0.9");
  EXPECT_EQ(table.lookup(nh, 0).status, ArpLookup::miss_request);
  EXPECT_EQ(table.lookup(nh, 1).status, ArpLookup::miss_pending);
  std::vector<ArpEvent> ev;
  auto collect = [&](uint32_t a, ArpEvent e) {
    EXPECT_EQ(a, nh);
    ev.push_back(e);
  };
  table.run_timers(kArpRetryNs - 1, collect);
  EXPECT_TRUE(ev.empty());
  table.run_timers(kArpRetryNs, collect);
  table.run_timers(2 * kArpRetryNs, collect);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1], ArpEvent::retransmit);
  table.run_timers(3 * kArpRetryNs, collect);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[2], ArpEvent::failed);
  EXPECT_EQ(table.lookup(nh, 3 * kArpRetryNs + 1).status, ArpLookup::failed);
  // A late reply after giving up is unsolicited.
  EXPECT_FALSE(table.on_reply(nh, kPeerMac, 3 * kArpRetryNs + 2));
  // After the hold time the neighbour is asked again.
  EXPECT_EQ(table.lookup(nh, 3 * kArpRetryNs + kArpFailedHoldNs).status, ArpLookup::miss_request);
}

TEST_F(ArpFixture, StaleEntryRefreshesThenExpires) {
  const uint32_t nh = ip("10.0.0.1");
  table.lookup(nh, 0);
  ASSERT_TRUE(table.on_reply(nh, kPeerMac, 0));
  EXPECT_EQ(table.lookup(nh, kArpReachableNs - 1).status, ArpLookup::hit);
  auto r = table.lookup(nh, kArpReachableNs);
  EXPECT_EQ(r.status, ArpLookup::hit_refresh);
  EXPECT_EQ(r.mac, kPeerMac);
  EXPECT_EQ(table.lookup(nh, kArpReachableNs + 1).status, ArpLookup::hit);  // already asked
  // The refresh reply is solicited and renews the entry.
  EXPECT_TRUE(table.on_reply(nh, kOtherMac, kArpReachableNs + 2));
  EXPECT_EQ(table.lookup(nh, kArpReachableNs + 3).mac, kOtherMac);
  // Unused past reachable + stale: forgotten by the timers.
  table.run_timers(3 * kArpReachableNs, [](uint32_t, ArpEvent) {});
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(ArpFixture, TableIsBounded) {
  // 16 entries; learned requesters never evict live entries.
  unsigned learned = 0, full = 0;
  for (int i = 1; i <= 200; ++i) {
    ArpPacket a = pkt(kArpRequest, kPeerMac, "10.0.0.1", "10.0.0.2");
    a.spa_be = htonl(ntohl(ip("10.0.1.0")) + uint32_t(i));
    auto d = input(a, 0);
    EXPECT_TRUE(d.reply);
    if (d.drop == DropReason::arp_table_full)
      ++full;
    else
      ++learned;
  }
  EXPECT_LE(table.size(), table.capacity());
  EXPECT_GT(full, 0u);
  EXPECT_EQ(learned, table.size());
}

TEST_F(ArpFixture, ResolutionEvictsOldestLearnedButNeverPending) {
  ArpTable t(4);  // one bucket of 4 ways
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(t.on_request(htonl(0x0A000100u + i), kPeerMac, i));
  EXPECT_FALSE(t.on_request(htonl(0x0A000105u), kPeerMac, 5));  // learning never evicts
  EXPECT_EQ(t.lookup(htonl(0x0A000106u), 6).status, ArpLookup::miss_request);  // evicts
  EXPECT_EQ(t.lookup(htonl(0x0A000101u), 7).status, ArpLookup::miss_request);  // oldest gone
  EXPECT_EQ(t.lookup(htonl(0x0A000107u), 8).status, ArpLookup::miss_request);
  EXPECT_EQ(t.lookup(htonl(0x0A000108u), 9).status, ArpLookup::miss_request);
  // Now all four ways are pending requests: nothing may be evicted.
  EXPECT_EQ(t.lookup(htonl(0x0A000109u), 10).status, ArpLookup::table_full);
}

}  // namespace
}  // namespace cw::dp::net
