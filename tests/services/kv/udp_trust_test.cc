// The UDP proof of receipt (app/services/kv/udp_trust.hh): CIDR allow-list entries and the
// bounded table of recent TCP peers (open sessions, the window after, eviction when full).
#include "app/services/kv/udp_trust.hh"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace cw::kv {
namespace {

uint32_t ip(const char* s) {
  in_addr a{};
  EXPECT_EQ(::inet_pton(AF_INET, s, &a), 1) << s;
  return a.s_addr;
}

TEST(UdpTrust, CidrsParseAndMatch) {
  const auto c = parse_cidr("10.97.0.7/24");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(ip("10.97.0.1")));
  EXPECT_TRUE(c->contains(ip("10.97.0.255")));
  EXPECT_FALSE(c->contains(ip("10.97.1.1")));
  const auto one = parse_cidr("192.0.2.1");
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->contains(ip("192.0.2.1")));
  EXPECT_FALSE(one->contains(ip("192.0.2.2")));
  const auto all = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(ip("203.0.113.9")));
  for (const char* bad : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0/8",
                          "10.0.0.0/8x", "host/8", "10.0.0.0 /8", "::1/128"})
    EXPECT_FALSE(parse_cidr(bad)) << bad;
  const Cidr list[] = {*parse_cidr("10.0.0.0/8"), *parse_cidr("192.0.2.1/32")};
  EXPECT_TRUE(in_any(list, ip("10.1.2.3")));
  EXPECT_TRUE(in_any(list, ip("192.0.2.1")));
  EXPECT_FALSE(in_any(list, ip("192.0.2.3")));
  EXPECT_FALSE(in_any({}, ip("10.1.2.3")));
}

TEST(UdpTrust, OpenSessionsProveAndTheWindowAfterThem) {
  TcpPeers p(1024, 60);
  const uint32_t a = ip("203.0.113.5"), b = ip("203.0.113.6");
  EXPECT_FALSE(p.proven(a, 1000));
  ASSERT_TRUE(p.opened(a, 1000));
  ASSERT_TRUE(p.opened(a, 1001));           // two sessions from one address
  EXPECT_TRUE(p.proven(a, 1000 + 100000));  // open: proven however long
  EXPECT_FALSE(p.proven(b, 1000));
  p.closed(a, 2000);
  EXPECT_TRUE(p.proven(a, 2100));  // one still open
  p.closed(a, 2000);
  EXPECT_TRUE(p.proven(a, 2059));
  EXPECT_FALSE(p.proven(a, 2060));
  p.closed(a, 2070);  // an extra close (a session it could not record) is harmless
  EXPECT_FALSE(p.proven(a, 2200));
  EXPECT_FALSE(p.opened(0, 1));  // 0.0.0.0 is never a peer
}

TEST(UdpTrust, WindowZeroRemembersOnlyOpenSessions) {
  TcpPeers p(16, 0);
  const uint32_t a = ip("198.51.100.1");
  ASSERT_TRUE(p.opened(a, 5));
  EXPECT_TRUE(p.proven(a, 5));
  p.closed(a, 6);
  EXPECT_FALSE(p.proven(a, 6));
}

TEST(UdpTrust, BoundedTableEvictsClosedPeersNeverOpenOnes) {
  TcpPeers p(8, 3600);  // 8 slots: every address probes all of them
  ASSERT_EQ(p.slots(), 8u);
  uint32_t addrs[9];
  for (uint32_t i = 0; i < 9; ++i) addrs[i] = htonl(0x0a000001 + i);
  for (uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(p.opened(addrs[i], 100 + i));
  EXPECT_FALSE(p.opened(addrs[8], 200));  // every slot holds an open session
  EXPECT_FALSE(p.proven(addrs[8], 200));
  for (uint32_t i = 0; i < 8; ++i) EXPECT_TRUE(p.proven(addrs[i], 200));
  p.closed(addrs[3], 150);
  p.closed(addrs[5], 140);  // the least recent closed one goes first
  ASSERT_TRUE(p.opened(addrs[8], 200));
  EXPECT_TRUE(p.proven(addrs[8], 200));
  EXPECT_FALSE(p.proven(addrs[5], 200));
  EXPECT_TRUE(p.proven(addrs[3], 200));
  // A lapsed entry is free again.
  p.closed(addrs[3], 150);
  ASSERT_TRUE(p.opened(addrs[5], 150 + 3600));
  EXPECT_FALSE(p.proven(addrs[3], 150 + 3600));
}

TEST(UdpTrust, ManyAddressesStayWithinTheTable) {
  TcpPeers p(1024, 10);
  uint32_t recorded = 0;
  for (uint32_t i = 1; i <= 100000; ++i) {
    if (p.opened(htonl(i), i / 100)) ++recorded;
    p.closed(htonl(i), i / 100);
  }
  EXPECT_EQ(recorded, 100000u);  // closed peers make room
  EXPECT_TRUE(p.proven(htonl(100000), 1000));
  EXPECT_EQ(p.slots(), 1024u);
}

}  // namespace
}  // namespace cw::kv
