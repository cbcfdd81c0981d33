#include "dataplane/dpdk/net/frame.hh"

#include <gtest/gtest.h>
#include <algorithm>

#include "dataplane/io.hh"
#include "tests/dataplane/dpdk/frames.hh"

namespace cw::dp::net {
namespace {

using namespace test;

Parsed parse(const std::vector<uint8_t>& f, RxOffload off = {}) {
  return parse_frame(f.data(), uint32_t(f.size()), test_interface(), off);
}
uint8_t* iph(std::vector<uint8_t>& f) {
  return f.data() + kEthHdrLen;
}
uint8_t* udph(std::vector<uint8_t>& f) {
  return f.data() + kEthHdrLen + kIpv4MinHdrLen;
}

// The datapath's inline fast path on a frame to our MAC without IPv4 options: it accepts
// exactly what parse_frame delivers as UDP, with the same datagram.
void expect_fast_agrees(const std::vector<uint8_t>& f, RxOffload off = {}) {
  const Parsed p = parse(f, off);
  UdpDatagram d;
  const bool fast = parse_udp_frame_fast(f.data(), uint32_t(f.size()), test_interface(), off, d);
  ASSERT_EQ(fast, p.kind == FrameKind::udp)
      << "fast path " << fast << ", parse_frame kind " << int(p.kind);
  if (!fast) return;
  EXPECT_EQ(d.src_be, p.src_be);
  EXPECT_EQ(d.dst_be, p.dst_be);
  EXPECT_EQ(d.sport_be, p.sport_be);
  EXPECT_EQ(d.dport_be, p.dport_be);
  EXPECT_EQ(d.payload_off, p.payload_off);
  EXPECT_EQ(d.payload_len, p.payload_len);
}

void expect_drop(const std::vector<uint8_t>& f, DropReason r, RxOffload off = {}) {
  const Parsed p = parse(f, off);
  EXPECT_EQ(p.kind, FrameKind::drop);
  EXPECT_EQ(p.drop, r) << "got " << drop_reason_name(p.drop) << ", want " << drop_reason_name(r);
}

TEST(DpdkFrame, ValidUdpIsDelivered) {
  auto f = udp_frame({'h', 'e', 'l', 'l', 'o'});
  const Parsed p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::udp);
  EXPECT_EQ(p.src_be, ip("10.0.0.1"));
  EXPECT_EQ(p.dst_be, ip("10.0.0.2"));
  EXPECT_EQ(ntohs(p.sport_be), 40000);
  EXPECT_EQ(ntohs(p.dport_be), 7);
  EXPECT_EQ(p.payload_len, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data() + p.payload_off), 5), "hello");
  EXPECT_EQ(p.src_mac, kPeerMac);
}

TEST(DpdkFrame, EthernetPaddingIsIgnored) {
  auto f = udp_frame({1});
  f.resize(60, 0xEE);  // a short frame padded to the Ethernet minimum
  const Parsed p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::udp);
  EXPECT_EQ(p.payload_len, 1u);
}

TEST(DpdkFrame, ZeroUdpChecksumIsAccepted) {
  auto f = udp_frame({1, 2, 3});
  store16(udph(f) + 6, 0);
  EXPECT_EQ(parse(f).kind, FrameKind::udp);
}

TEST(DpdkFrame, ComputedUdpChecksumVerifies) {
  // Odd payload lengths exercise the padding byte of the sum.
  for (size_t n : {0, 1, 2, 3, 99, 1000, 1472}) {
    std::vector<uint8_t> payload(n);
    for (size_t i = 0; i < n; ++i) payload[i] = uint8_t(i * 7 + 3);
    auto f = udp_frame(payload);
    EXPECT_NE(load16(udph(f) + 6), 0);
    EXPECT_EQ(parse(f).kind, FrameKind::udp) << n;
  }
}

// csum_add sums native words and swaps once; it must equal the plain RFC 1071 big-endian
// 16-bit word sum for every length, alignment and starting sum.
TEST(DpdkFrame, ChecksumMatchesReference) {
  auto reference = [](const uint8_t* p, size_t len, uint64_t sum) {
    for (; len >= 2; p += 2, len -= 2) sum += uint32_t(p[0]) << 8 | p[1];
    if (len) sum += uint32_t(p[0]) << 8;
    return csum_fold(sum);
  };
  // RFC 1071 section 3's example: the folded sum of 00 01 f2 03 f4 f5 f6 f7 is 0xddf2.
  const uint8_t rfc[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(csum_fold_raw(csum_add(rfc, sizeof rfc)), 0xddf2);
  std::vector<uint8_t> buf(1600);
  uint32_t x = 12345;
  for (auto& b : buf) b = uint8_t((x = x * 1103515245 + 12345) >> 16);
  for (size_t off = 0; off < 8; ++off)
    for (size_t len = 0; len < 200; ++len)
      for (uint64_t start : {uint64_t{0}, uint64_t{0xFFFF}, uint64_t{0x1234567}})
        ASSERT_EQ(csum_fold(csum_add(buf.data() + off, len, start)),
                  reference(buf.data() + off, len, start))
            << off << " " << len << " " << start;
  std::fill(buf.begin(), buf.end(), 0xFF);  // worst case for carries
  EXPECT_EQ(csum_fold(csum_add(buf.data(), buf.size())), reference(buf.data(), buf.size(), 0));
}

// The carry paths of csum_add: blocks of all-ones bytes (every 64-bit add carries) at every
// length and offset, up to a maximum-size IPv4 datagram; a block of zeros sums to zero.
TEST(DpdkFrame, ChecksumCarriesAndExtremes) {
  auto reference = [](const uint8_t* p, size_t len) {
    uint64_t sum = 0;
    for (; len >= 2; p += 2, len -= 2) sum += uint32_t(p[0]) << 8 | p[1];
    if (len) sum += uint32_t(p[0]) << 8;
    return csum_fold(sum);
  };
  std::vector<uint8_t> ones(kMaxIpv4Len + 8, 0xFF);
  for (size_t off = 0; off < 8; ++off)
    for (size_t len = 0; len < 300; ++len)
      ASSERT_EQ(csum_fold(csum_add(ones.data() + off, len)), reference(ones.data() + off, len))
          << off << " " << len;
  for (size_t len : {size_t{65534}, size_t{kMaxIpv4Len}})
    EXPECT_EQ(csum_fold(csum_add(ones.data() + 1, len)), reference(ones.data() + 1, len));
  const std::vector<uint8_t> zeros(100, 0);
  EXPECT_EQ(csum_add(zeros.data(), zeros.size()), 0u);
  EXPECT_EQ(csum_fold(csum_add(zeros.data(), zeros.size())), 0xFFFF);
  // Bytes that sum to a multiple of 0xFFFF fold to 0xFFFF (not 0): the checksum field of a
  // correct block.
  const uint8_t ff00[] = {0xFF, 0x00, 0x00, 0xFF};
  EXPECT_EQ(csum_fold_raw(csum_add(ff00, sizeof ff00)), 0xFFFF);
}

// fold16 (rotate-and-add) gives the same value as folding by repeated shift-and-add.
TEST(DpdkFrame, FoldMatchesRepeatedFold) {
  auto slow = [](uint64_t s) {
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return uint16_t(s);
  };
  std::vector<uint64_t> v = {
      0,           1,          0xFFFF,       0x10000,          0x1FFFE,          0xFFFFFFFF,
      0x100000000, 0xFFFF0001, ~uint64_t{0}, ~uint64_t{0} - 1, uint64_t{1} << 63};
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 100000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v.push_back(x);
    v.push_back(x >> (i % 64));
  }
  for (uint64_t s : v) ASSERT_EQ(fold16(s), slow(s)) << s;
}

TEST(DpdkFrame, OffloadHeadersCarryPseudoHeaderSum) {
  std::vector<uint8_t> f(kUdpFrameHdrLen + 4);
  UdpHeaderSpec h = peer_to_us();
  write_udp_frame(f.data(), h, 4, TxCsum::offload);
  EXPECT_EQ(load16(iph(f) + 10), 0);  // the NIC fills it
  EXPECT_EQ(load16(udph(f) + 6), csum_fold_raw(pseudo_header_sum(h.src_be, h.dst_be, 17, 12)));
}

// The prepared-header path must write exactly the bytes of the per-datagram one, for any
// payload length, destination port and IP id, in both checksum modes.
TEST(DpdkFrame, TemplateWritesTheSameFrame) {
  uint32_t x = 777;
  for (TxCsum mode : {TxCsum::software, TxCsum::offload})
    for (uint32_t len : {0u, 1u, 2u, 7u, 64u, 65u, 1000u, 1458u}) {
      UdpHeaderSpec h = peer_to_us();
      const UdpTemplate t = make_udp_template(h, mode);
      for (uint16_t dport : {1, 7, 11111, 65535})
        for (uint16_t id : {0, 1, 0xFFFF, 0x1234}) {
          std::vector<uint8_t> a(kUdpFrameHdrLen + len), b;
          for (uint32_t i = 0; i < len; ++i)
            a[kUdpFrameHdrLen + i] = uint8_t((x = x * 1103515245 + 12345) >> 16);
          b = a;
          h.dport_be = htons(dport);
          h.ip_id = id;
          write_udp_frame(a.data(), h, len, mode);
          write_udp_frame(b.data(), t, h.dport_be, id, len);
          ASSERT_EQ(a, b) << int(mode) << " " << len << " " << dport << " " << id;
          if (mode == TxCsum::software) {
            ASSERT_EQ(parse(b).kind, FrameKind::udp);  // and both checksums verify
          }
        }
    }
}

// A reply written over its request (write_udp_reply_frame: the request's checksum updated
// for the changes, RFC 1624) must be byte for byte the frame the full write produces: any
// payload length (odd ones too), any changed bytes, any addresses and ports on either side
// (the reply's source address and port each the request's destination or not, apart),
// payloads of all zeros and all ones (checksum extremes), a request without a checksum and
// a reply shorter than its request (both get the full sum).
TEST(DpdkFrame, ReplyOverRequestUpdatesTheChecksum) {
  uint32_t x = 4242;
  auto rnd = [&x] { return (x = x * 1103515245 + 12345) >> 8; };
  for (uint32_t len : {0u, 1u, 2u, 3u, 14u, 63u, 64u, 65u, 1000u, 1472u})
    for (int round = 0; round < 60; ++round) {
      UdpHeaderSpec rq = peer_to_us();
      rq.src_be = rnd();
      rq.dst_be = round % 2 ? rq.dst_be : rnd();
      rq.sport_be = uint16_t(rnd());
      rq.dport_be = uint16_t(rnd());
      rq.ip_id = uint16_t(rnd());
      std::vector<uint8_t> a(kUdpFrameHdrLen + len);
      std::generate(a.begin() + kUdpFrameHdrLen, a.end(), [&] {
        return round % 5 == 0 ? 0 : round % 5 == 1 ? 0xFF : uint8_t(rnd());
      });
      write_udp_frame(a.data(), rq, len, TxCsum::software);
      const bool no_csum = round % 11 == 3;
      if (no_csum) store16(udph(a) + 6, 0);
      // The reply: to the request's source, from ours or another address and port.
      UdpHeaderSpec rp = rq;
      rp.src_be = round % 3 ? rq.dst_be : rnd();
      rp.dst_be = rq.src_be;
      rp.sport_be = round % 4 ? rq.dport_be : uint16_t(rnd());  // independent of the address
      rp.dport_be = rq.sport_be;
      rp.src_mac = rq.dst_mac;
      rp.dst_mac = rq.src_mac;
      rp.ip_id = uint16_t(rnd());
      const UdpTemplate t = make_udp_template(rp, TxCsum::software);
      CsumEdits e;
      for (uint32_t k = 0, n = len ? rnd() % 5 : 0; k < n; ++k) {
        const uint32_t off = rnd() % len;
        const uint8_t was = a[kUdpFrameHdrLen + off], now = uint8_t(rnd());
        a[kUdpFrameHdrLen + off] = now;
        e.byte(off, was, now);
      }
      const uint32_t rlen = len && round % 13 == 5 ? len - 1 : len;
      std::vector<uint8_t> b = a;
      write_udp_frame(b.data(), rp, rlen, TxCsum::software);
      write_udp_reply_frame(a.data(), t, rp.dport_be, rp.ip_id, rlen, e.native_sum());
      ASSERT_EQ(a, b) << "len " << len << " round " << round;
    }
}

// The update trusts the request's checksum and the reported edits: a byte changed without
// being reported leaves the checksum of the request's bytes (which is what makes the update
// cheaper than a sum over the payload).
TEST(DpdkFrame, ReplyOverRequestDoesNotSumThePayload) {
  const std::vector<uint8_t> payload(64, 0x5A);
  std::vector<uint8_t> a = udp_frame(payload);
  UdpHeaderSpec rp = peer_to_us();
  std::swap(rp.src_be, rp.dst_be);
  std::swap(rp.src_mac, rp.dst_mac);
  rp.sport_be = peer_to_us().dport_be;
  rp.dport_be = peer_to_us().sport_be;
  std::vector<uint8_t> want = a;
  write_udp_frame(want.data(), rp, 64, TxCsum::software);
  a[kUdpFrameHdrLen + 10] ^= 0xFF;  // not reported
  write_udp_reply_frame(a.data(), make_udp_template(rp, TxCsum::software), rp.dport_be, rp.ip_id,
                        64, CsumEdits{}.native_sum());
  EXPECT_EQ(load16(udph(a) + 6), load16(udph(want) + 6));
}

// The datapath's inline fast path (parse_udp_frame_fast) accepts the plain datagram to our
// MAC with parse_frame's fields, and leaves everything else to parse_frame: a broadcast
// MAC, another MAC, a bad checksum, a short frame, an ICMP echo request. (fuzz_dpdk_frame
// checks the same agreement on arbitrary input.)
TEST(DpdkFrame, FastPathAgreesWithParseFrame) {
  const Interface ifc = test_interface();
  auto fast = [&](const std::vector<uint8_t>& f, UdpDatagram* d) {
    return parse_udp_frame_fast(f.data(), uint32_t(f.size()), ifc, {}, *d);
  };
  UdpDatagram d;
  const auto good = udp_frame({1, 2, 3, 4, 5});
  ASSERT_TRUE(fast(good, &d));
  const Parsed p = parse(good);
  EXPECT_EQ(d.src_be, p.src_be);
  EXPECT_EQ(d.dst_be, p.dst_be);
  EXPECT_EQ(d.sport_be, p.sport_be);
  EXPECT_EQ(d.dport_be, p.dport_be);
  EXPECT_EQ(d.payload_off, p.payload_off);
  EXPECT_EQ(d.payload_len, 5u);
  auto bcast = good;
  store_mac(bcast.data(), kBroadcastMac);
  EXPECT_FALSE(fast(bcast, &d));
  auto other = good;
  other[5] ^= 1;
  EXPECT_FALSE(fast(other, &d));
  auto bad = good;
  bad[kUdpFrameHdrLen] ^= 0xFF;  // payload changed under the checksum
  EXPECT_FALSE(fast(bad, &d));
  EXPECT_EQ(parse(bad).drop, DropReason::udp_bad_checksum);
  auto shortf = good;
  shortf.resize(kUdpFrameHdrLen - 1);
  EXPECT_FALSE(fast(shortf, &d));
  EXPECT_FALSE(fast(echo_request(), &d));
}

TEST(DpdkFrame, NicVerifiedChecksumsSkipSoftware) {
  auto f = udp_frame({1, 2, 3});
  store16(iph(f) + 10, 0xDEAD);
  store16(udph(f) + 6, 0xBEEF);
  EXPECT_EQ(parse(f, {CsumState::good, CsumState::good}).kind, FrameKind::udp);
}

TEST(DpdkFrame, EthTooShort) {
  expect_drop(std::vector<uint8_t>(13), DropReason::eth_too_short);
}

TEST(DpdkFrame, EthNotForUs) {
  auto f = udp_frame({1});
  f[5] = 0x99;
  expect_drop(f, DropReason::eth_not_for_us);
  f[0] = 0x33;  // IPv6 multicast MAC
  expect_drop(f, DropReason::eth_not_for_us);
}

TEST(DpdkFrame, EthVlan) {
  auto f = udp_frame({1});
  store16(f.data() + 12, kEtherTypeVlan);
  expect_drop(f, DropReason::eth_vlan);
  store16(f.data() + 12, kEtherTypeQinQ);
  expect_drop(f, DropReason::eth_vlan);
}

TEST(DpdkFrame, EthUnknownType) {
  auto f = udp_frame({1});
  store16(f.data() + 12, 0x86DD);
  expect_drop(f, DropReason::eth_unknown_type);
}

TEST(DpdkFrame, IpTooShort) {
  auto f = udp_frame({});
  f.resize(kEthHdrLen + 19);
  expect_drop(f, DropReason::ip_too_short);
}

TEST(DpdkFrame, IpBadVersion) {
  auto f = udp_frame({1});
  iph(f)[0] = 0x65;
  fix_ip_csum(f);
  expect_drop(f, DropReason::ip_bad_version);
}

TEST(DpdkFrame, IpBadIhl) {
  auto f = udp_frame({1});
  iph(f)[0] = 0x44;  // IHL 4 < 5
  expect_drop(f, DropReason::ip_bad_ihl);
  iph(f)[0] = 0x4F;  // 60 bytes of header, frame has 29
  expect_drop(f, DropReason::ip_bad_ihl);
}

TEST(DpdkFrame, IpOptionsAreSkipped) {
  // Rebuild with a 4-byte option (NOP x4): IHL 6.
  auto f = udp_frame({9, 9});
  f.insert(f.begin() + kEthHdrLen + kIpv4MinHdrLen, {1, 1, 1, 1});
  iph(f)[0] = 0x46;
  store16(iph(f) + 2, uint16_t(load16(iph(f) + 2) + 4));
  fix_ip_csum(f);
  const Parsed p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::udp);
  EXPECT_EQ(p.payload_len, 2u);
  EXPECT_EQ(f[p.payload_off], 9);
}

TEST(DpdkFrame, IpBadTotalLength) {
  auto f = udp_frame({1, 2, 3, 4});
  store16(iph(f) + 2, 19);  // < IHL*4
  fix_ip_csum(f);
  expect_drop(f, DropReason::ip_bad_total_length);
  store16(iph(f) + 2, uint16_t(f.size() - kEthHdrLen + 1));  // beyond the frame
  fix_ip_csum(f);
  expect_drop(f, DropReason::ip_bad_total_length);
}

TEST(DpdkFrame, IpBadChecksum) {
  auto f = udp_frame({1});
  iph(f)[10] ^= 1;
  expect_drop(f, DropReason::ip_bad_checksum);
  auto g = udp_frame({1});
  expect_drop(g, DropReason::ip_bad_checksum, {CsumState::bad, CsumState::unknown});
}

TEST(DpdkFrame, IpBadSrc) {
  for (const char* src :
       {"0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "10.0.0.2", "10.0.0.255"}) {
    UdpHeaderSpec h = peer_to_us();
    h.src_be = ip(src);
    expect_drop(udp_frame({1}, h), DropReason::ip_bad_src);
  }
}

TEST(DpdkFrame, IpNotForUs) {
  UdpHeaderSpec h = peer_to_us();
  h.dst_be = ip("10.0.0.3");
  expect_drop(udp_frame({1}, h), DropReason::ip_not_for_us);
}

TEST(DpdkFrame, IpBroadcast) {
  for (const char* dst : {"255.255.255.255", "10.0.0.255", "239.1.2.3"}) {
    UdpHeaderSpec h = peer_to_us();
    h.dst_be = ip(dst);
    h.dst_mac = kBroadcastMac;
    expect_drop(udp_frame({1}, h), DropReason::ip_broadcast);
  }
}

TEST(DpdkFrame, FragmentsAreReportedNotParsed) {
  auto f = udp_frame(std::vector<uint8_t>(16));  // 24 L4 bytes: a multiple of 8
  store16(iph(f) + 6, 0x2000);                   // MF, offset 0
  fix_ip_csum(f);
  EXPECT_EQ(parse(f).kind, FrameKind::ipv4_fragment);
  store16(iph(f) + 6, 0x0003);  // last fragment at offset 24
  fix_ip_csum(f);
  EXPECT_EQ(parse(f).kind, FrameKind::ipv4_fragment);
}

TEST(DpdkFrame, IpBadFragment) {
  auto f = udp_frame(std::vector<uint8_t>(5));  // 13 L4 bytes: not a multiple of 8
  store16(iph(f) + 6, 0x2000);
  fix_ip_csum(f);
  expect_drop(f, DropReason::ip_bad_fragment);
  auto g = udp_frame(std::vector<uint8_t>(16));
  store16(iph(g) + 6, 0x1FFF);  // offset 65528 + 24 bytes > 65535
  fix_ip_csum(g);
  expect_drop(g, DropReason::ip_bad_fragment);
}

TEST(DpdkFrame, TcpUnsupportedAndUnknownProto) {
  auto f = udp_frame({1});
  iph(f)[9] = kProtoTcp;
  fix_ip_csum(f);
  expect_drop(f, DropReason::tcp_unsupported);
  iph(f)[9] = 47;  // GRE
  fix_ip_csum(f);
  expect_drop(f, DropReason::ip_unknown_proto);
}

TEST(DpdkFrame, UdpTooShort) {
  auto f = udp_frame({});
  store16(iph(f) + 2, 27);  // 7 bytes of L4
  fix_ip_csum(f);
  expect_drop(f, DropReason::udp_too_short);
}

TEST(DpdkFrame, UdpBadLength) {
  auto f = udp_frame({1, 2});
  store16(udph(f) + 4, 7);
  expect_drop(f, DropReason::udp_bad_length);
  store16(udph(f) + 4, 11);  // beyond the IP payload (10)
  expect_drop(f, DropReason::udp_bad_length);
}

TEST(DpdkFrame, UdpLengthShorterThanIpPayloadTrims) {
  auto f = udp_frame({1, 2, 3});
  f.push_back(0xAA);  // one trailing byte inside the IP datagram
  store16(iph(f) + 2, uint16_t(load16(iph(f) + 2) + 1));
  fix_ip_csum(f);
  const Parsed p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::udp);
  EXPECT_EQ(p.payload_len, 3u);
}

TEST(DpdkFrame, UdpBadChecksum) {
  auto f = udp_frame({1, 2, 3});
  f.back() ^= 0x40;
  expect_drop(f, DropReason::udp_bad_checksum);
  auto g = udp_frame({1, 2, 3});
  expect_drop(g, DropReason::udp_bad_checksum, {CsumState::good, CsumState::bad});
}

// The parser's fast path (IHL 5, unfragmented UDP) must accept exactly what the full checks
// accept, with the same fields, and leave every reason to them. These frames sit on its
// edges.
// The edges of the plain datagram, through parse_frame and the inline fast path alike.
TEST(DpdkFrame, PlainUdpEdges) {
  // DF set is still a plain datagram.
  auto df = udp_frame({1, 2, 3});
  store16(iph(df) + 6, 0x4000);
  fix_ip_csum(df);
  EXPECT_EQ(parse(df).kind, FrameKind::udp);
  expect_fast_agrees(df);
  // An empty payload (UDP length 8, total length 28) and an odd one.
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{1471}}) {
    const auto f = udp_frame(std::vector<uint8_t>(n, 0xA5));
    const Parsed p = parse(f);
    ASSERT_EQ(p.kind, FrameKind::udp) << n;
    EXPECT_EQ(p.l3_off, kEthHdrLen);
    EXPECT_EQ(p.l4_off, kEthHdrLen + kIpv4MinHdrLen);
    EXPECT_EQ(p.ip_len, kIpv4MinHdrLen + kUdpHdrLen + n);
    EXPECT_EQ(p.payload_off, kUdpFrameHdrLen);
    EXPECT_EQ(p.payload_len, n);
    EXPECT_EQ(p.sport_be, peer_to_us().sport_be);
    EXPECT_EQ(p.dport_be, peer_to_us().dport_be);
    expect_fast_agrees(f);
  }
  // Total length 27: too short for a UDP header (the fast path's one compare must not wrap
  // into acceptance).
  auto t = udp_frame({});
  store16(iph(t) + 2, 27);
  fix_ip_csum(t);
  expect_drop(t, DropReason::udp_too_short);
  expect_fast_agrees(t);
  // UDP length 7, and one byte past the IP payload.
  auto u = udp_frame({1, 2});
  store16(udph(u) + 4, 7);
  expect_drop(u, DropReason::udp_bad_length);
  expect_fast_agrees(u);
  store16(udph(u) + 4, 11);
  expect_drop(u, DropReason::udp_bad_length);
  expect_fast_agrees(u);
  // The same without a checksum, which would otherwise reject them anyway.
  store16(udph(u) + 6, 0);
  for (uint16_t ulen : {7, 11}) {
    store16(udph(u) + 4, ulen);
    expect_drop(u, DropReason::udp_bad_length);
    expect_fast_agrees(u);
  }
  // Checksums the NIC verified are not recomputed; one it failed is a drop.
  auto bad = udp_frame({1, 2, 3});
  store16(iph(bad) + 10, 0x1234);
  store16(udph(bad) + 6, 0x1234);
  EXPECT_EQ(parse(bad, {CsumState::good, CsumState::good}).kind, FrameKind::udp);
  expect_drop(bad, DropReason::ip_bad_checksum);
  expect_drop(bad, DropReason::udp_bad_checksum, {CsumState::good, CsumState::unknown});
  expect_drop(udp_frame({1}), DropReason::ip_bad_checksum, {CsumState::bad, CsumState::good});
  for (RxOffload off : {RxOffload{CsumState::good, CsumState::good}, RxOffload{},
                        RxOffload{CsumState::good, CsumState::unknown},
                        RxOffload{CsumState::unknown, CsumState::bad}})
    expect_fast_agrees(bad, off);
  expect_fast_agrees(udp_frame({1}), {CsumState::bad, CsumState::good});
  // Reassembled datagrams enter at the IPv4 header.
  const auto g = udp_frame({1, 2, 3});
  const Parsed q = parse_ipv4_datagram(g.data() + kEthHdrLen, uint32_t(g.size() - kEthHdrLen),
                                       test_interface(), {CsumState::good, {}});
  EXPECT_EQ(q.kind, FrameKind::udp);
  EXPECT_EQ(q.l3_off, 0);
  EXPECT_EQ(q.payload_off, kIpv4MinHdrLen + kUdpHdrLen);
}

// Several addresses (and a /32, /31 and /0 among them): the one-pass source and destination
// checks against every address.
TEST(DpdkFrame, SeveralAddresses) {
  Interface ifc = test_interface();
  ifc.addrs[1] = {ip("192.168.7.1"), 30};
  ifc.addrs[2] = {ip("172.16.0.9"), 32};
  ifc.addrs[3] = {ip("172.16.1.4"), 31};
  ifc.naddrs = 4;
  auto run = [&](const char* src, const char* dst) {
    UdpHeaderSpec h = peer_to_us();
    h.src_be = ip(src);
    h.dst_be = ip(dst);
    const auto f = udp_frame({1, 2}, h);
    return parse_frame(f.data(), uint32_t(f.size()), ifc, {});
  };
  for (const char* dst : {"10.0.0.2", "192.168.7.1", "172.16.0.9", "172.16.1.4"})
    EXPECT_EQ(run("10.0.0.1", dst).kind, FrameKind::udp) << dst;
  // Our own addresses and the directed broadcasts of our subnets (the /31's is its upper
  // address, as in is_broadcast) are bad sources; a /32 has no broadcast.
  for (const char* src : {"192.168.7.1", "172.16.0.9", "192.168.7.3", "10.0.0.255", "172.16.1.5"})
    EXPECT_EQ(run(src, "10.0.0.2").drop, DropReason::ip_bad_src) << src;
  for (const char* src : {"192.168.7.2", "172.16.0.10", "172.16.1.6"})
    EXPECT_EQ(run(src, "10.0.0.2").kind, FrameKind::udp) << src;
  EXPECT_EQ(run("10.0.0.1", "192.168.7.3").drop, DropReason::ip_broadcast);
  EXPECT_EQ(run("10.0.0.1", "192.168.7.2").drop, DropReason::ip_not_for_us);
  // A /0 address: its directed broadcast is the limited broadcast, every other source is
  // plausible.
  ifc.addrs[4] = {ip("10.9.9.9"), 0};
  ifc.naddrs = 5;
  EXPECT_EQ(run("8.8.8.8", "10.9.9.9").kind, FrameKind::udp);
  EXPECT_EQ(run("10.9.9.9", "10.0.0.2").drop, DropReason::ip_bad_src);
}

TEST(DpdkFrame, IcmpEchoIsAnsweredInPlace) {
  auto f = echo_request(24);
  const Parsed p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::icmp_echo);
  const uint32_t n = make_echo_reply(f.data(), p);
  EXPECT_EQ(n, f.size());
  EXPECT_EQ(load_mac(f.data()), kPeerMac);
  EXPECT_EQ(load_mac(f.data() + 6), kOurMac);
  EXPECT_EQ(load_be32(iph(f) + 12), ip("10.0.0.2"));
  EXPECT_EQ(load_be32(iph(f) + 16), ip("10.0.0.1"));
  EXPECT_EQ(csum_fold(csum_add(iph(f), 20)), 0);
  uint8_t* icmp = udph(f);
  EXPECT_EQ(icmp[0], 0);
  EXPECT_EQ(load16(icmp + 4), 0x1234);
  EXPECT_EQ(csum_fold(csum_add(icmp, kIcmpHdrLen + 24)), 0);
}

TEST(DpdkFrame, IcmpTooShort) {
  auto f = echo_request(0);
  store16(iph(f) + 2, 27);
  fix_ip_csum(f);
  expect_drop(f, DropReason::icmp_too_short);
}

TEST(DpdkFrame, IcmpBadChecksum) {
  auto f = echo_request(8);
  f.back() ^= 1;
  expect_drop(f, DropReason::icmp_bad_checksum);
}

TEST(DpdkFrame, IcmpUnhandled) {
  auto f = echo_request(8);
  uint8_t* icmp = udph(f);
  icmp[0] = 13;  // timestamp request
  store16(icmp + 2, 0);
  store16(icmp + 2, csum_fold(csum_add(icmp, 16)));
  expect_drop(f, DropReason::icmp_unhandled);
}

std::vector<uint8_t> arp_frame(uint16_t op, const Mac& sha, const char* spa, const char* tpa,
                               const Mac& eth_dst = kBroadcastMac) {
  std::vector<uint8_t> f(kEthMinFrame);
  build_arp(f.data(), op, eth_dst, sha, ip(spa), kZeroMac, ip(tpa));
  return f;
}

TEST(DpdkFrame, ArpRoundTrip) {
  auto f = arp_frame(kArpRequest, kPeerMac, "10.0.0.1", "10.0.0.2");
  const Parsed p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::arp);
  EXPECT_EQ(p.arp.op, kArpRequest);
  EXPECT_EQ(p.arp.sha, kPeerMac);
  EXPECT_EQ(p.arp.spa_be, ip("10.0.0.1"));
  EXPECT_EQ(p.arp.tpa_be, ip("10.0.0.2"));
  EXPECT_EQ(p.src_mac, kPeerMac);
}

TEST(DpdkFrame, ArpMalformed) {
  auto f = arp_frame(kArpRequest, kPeerMac, "10.0.0.1", "10.0.0.2");
  auto short_f = f;
  short_f.resize(kEthHdrLen + kArpLen - 1);
  expect_drop(short_f, DropReason::arp_malformed);
  for (size_t field : {0, 2, 4, 5}) {  // htype, ptype, hlen, plen
    auto g = f;
    g[kEthHdrLen + field + (field < 4 ? 1 : 0)] ^= 0x10;
    expect_drop(g, DropReason::arp_malformed);
  }
}

TEST(DpdkFrame, ArpBadOp) {
  auto f = arp_frame(3, kPeerMac, "10.0.0.1", "10.0.0.2");  // RARP request
  expect_drop(f, DropReason::arp_bad_op);
}

TEST(DpdkFrame, DropReasonNamesAreDistinct) {
  for (size_t i = 0; i < kDropReasonCount; ++i)
    for (size_t j = i + 1; j < kDropReasonCount; ++j)
      EXPECT_STRNE(drop_reason_name(DropReason(i)), drop_reason_name(DropReason(j)));
  EXPECT_STREQ(drop_reason_name(DropReason::udp_bad_checksum), "udp_bad_checksum");
  DropCounters c;
  c.add(DropReason::eth_vlan);
  c.add(DropReason::tx_ring_full, 3);
  EXPECT_EQ(c.get(DropReason::eth_vlan), 1u);
  EXPECT_EQ(c.total(), 4u);
}

TEST(DpdkFrame, FragmentHeaders) {
  UdpHeaderSpec h = peer_to_us();
  EXPECT_EQ(frag_payload(1500), 1480u);
  std::vector<uint8_t> f(kEthHdrLen + kIpv4MinHdrLen + 1480);
  write_fragment_headers(f.data(), h, 1480, 1480, true);
  EXPECT_EQ(load16(iph(f) + 6), 0x2000 | 185);
  EXPECT_EQ(load16(iph(f) + 2), 1500);
  EXPECT_EQ(csum_fold(csum_add(iph(f), 20)), 0);
  const Parsed p = parse(f);
  EXPECT_EQ(p.kind, FrameKind::ipv4_fragment);
}

}  // namespace
}  // namespace cw::dp::net
