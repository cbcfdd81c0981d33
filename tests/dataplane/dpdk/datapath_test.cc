// DPDK datapath tests on a net_ring vdev in this process: the ring PMD's queue 0 uses one
// rte_ring for both RX and TX, so the test injects frames by enqueuing mbufs into it and
// reads what the worker sent by dequeuing after flush (before the next poll would read it
// back). Everything runs on the test's main thread, which is the EAL main lcore. Needs the
// rights to start an EAL (--no-huge); skipped with the reason otherwise.
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>

#include "dataplane/dpdk/dpdk_io.hh"
#include "tests/dataplane/dpdk/frames.hh"

namespace cw::dp {
namespace {

using namespace net;
using namespace net::test;

constexpr uint32_t kMaxDatagram = 2000;
constexpr uint32_t kArpQueue = 4;
constexpr SocketId kTcpClient = 1;  // the fixture's TCP client socket

class DpdkDatapath : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    IoConfig io;
    io.workers = 1;
    io.rx_buffers = 512;
    io.tx_buffers = 512;
    io.max_datagram = kMaxDatagram;
    io.max_conns = 16;  // socket 1's TCP engine: a small table
    DpdkConfig cfg;
    cfg.eal_args = {"--no-huge",
                    "-m",
                    "128",
                    "--no-pci",
                    "--no-shconf",
                    "--log-level=lib.eal:error",
                    "--file-prefix=cwdp" + std::to_string(getpid())};
    cfg.port = "net_ring_cwdp";
    cfg.addresses = {parse_cidr("10.0.0.2/24").value()};
    cfg.rx_desc = 256;
    cfg.tx_desc = 256;
    cfg.arp_queue = kArpQueue;
    cfg.frag_timeout_ms = 100;
    const std::vector<SocketSpec> specs{
        {Transport::udp, parse_endpoint("0.0.0.0:7").value(), true},
        {Transport::tcp, parse_endpoint("0.0.0.0:0").value(), false}};  // kTcpClient
    auto b = DpdkBackend::create(io, specs, cfg);
    if (!b) {
      skip_ = b.error().message;
      return;
    }
    backend_ = std::move(b.value());
    auto w = backend_->open_worker(0);
    if (!w) {
      skip_ = w.error().message;
      return;
    }
    worker_ = std::move(w.value());
    ring_ = rte_ring_lookup("ETH_RXTX0_net_ring_cwdp");
    pool_ =
        rte_pktmbuf_pool_create("cwdp_test", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (!ring_ || !pool_) skip_ = "ring PMD layout not as expected";
    std::system(("rm -rf /var/run/dpdk/cwdp" + std::to_string(getpid())).c_str());
  }
  static void TearDownTestSuite() {
    worker_.reset();
    backend_.reset();
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << "no EAL/ring port here: " << skip_;
    take_tx();
  }

  void inject(const std::vector<uint8_t>& f) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, uint16_t(f.size())), f.data(), f.size());
    ASSERT_EQ(rte_ring_enqueue(ring_, m), 0);
  }
  // One poll reads everything injected; a second would read back what the first sent.
  uint32_t poll(std::vector<RxItem>& out, int tries = 1) {
    out.resize(64);
    uint32_t n = 0;
    for (int i = 0; i < tries && n == 0; ++i) n = worker_->poll(out.data(), 64, 0);
    out.resize(n);
    return n;
  }
  // Frames the worker sent since the last call.
  std::vector<std::vector<uint8_t>> take_tx() {
    std::vector<std::vector<uint8_t>> v;
    void* o;
    while (ring_ && rte_ring_dequeue(ring_, &o) == 0) {
      auto* m = static_cast<rte_mbuf*>(o);
      const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
      v.emplace_back(p, p + rte_pktmbuf_data_len(m));
      rte_pktmbuf_free(m);
    }
    return v;
  }
  uint64_t drops(DropReason r) { return backend_->drops(0).get(r); }
  void send(const char* to, uint16_t port, uint32_t len, uint8_t fill = 0x5A) {
    uint8_t* p = worker_->dgram_reserve(0, Endpoint{ip(to), htons(port)}, len);
    ASSERT_NE(p, nullptr);
    std::memset(p, fill, len);
    worker_->dgram_commit(len);
  }
  // An ARP request from `who` (at `mac`) for our address, received by the worker (which
  // answers it and, with learn_from_requests, learns `who`). Returns what the worker sent.
  std::vector<std::vector<uint8_t>> arp_request_from(const char* who, const Mac& mac) {
    std::vector<uint8_t> f(kEthMinFrame);
    build_arp(f.data(), kArpRequest, kBroadcastMac, mac, ip(who), kZeroMac, ip("10.0.0.2"));
    inject(f);
    std::vector<RxItem> items;
    poll(items);
    return take_tx();
  }
  // Answers an ARP request the worker sent for `who`.
  void arp_reply_from(const char* who, const Mac& mac) {
    std::vector<uint8_t> f(kEthMinFrame);
    build_arp(f.data(), kArpReply, backend_->mac(), mac, ip(who), backend_->mac(), ip("10.0.0.2"));
    inject(f);
  }
  UdpHeaderSpec to_us(uint16_t dport = 7) {
    UdpHeaderSpec h = peer_to_us(dport);
    h.dst_mac = backend_->mac();
    return h;
  }

  static inline std::string skip_;
  static inline std::unique_ptr<DpdkBackend> backend_;
  static inline std::unique_ptr<DpdkWorker> worker_;
  static inline rte_ring* ring_ = nullptr;
  static inline rte_mempool* pool_ = nullptr;
};

bool is_arp_request_for(const std::vector<uint8_t>& f, const char* who) {
  ArpPacket a;
  DropReason why;
  return f.size() >= kEthHdrLen + kArpLen && load16(f.data() + 12) == kEtherTypeArp &&
         parse_arp(f.data() + kEthHdrLen, uint32_t(f.size() - kEthHdrLen), &a, &why) &&
         a.op == kArpRequest && a.tpa_be == ip(who) && a.spa_be == ip("10.0.0.2") &&
         load_mac(f.data()) == kBroadcastMac;
}

TEST_F(DpdkDatapath, UdpIsDeliveredWithDataInTheMbuf) {
  inject(udp_frame({'p', 'i', 'n', 'g'}, to_us()));
  std::vector<RxItem> items;
  ASSERT_EQ(poll(items), 1u);
  EXPECT_EQ(items[0].kind, RxKind::datagram);
  EXPECT_EQ(items[0].sock, 0);
  EXPECT_EQ(items[0].peer, (Endpoint{ip("10.0.0.1"), htons(40000)}));
  ASSERT_EQ(items[0].len, 4u);
  EXPECT_EQ(std::memcmp(items[0].data, "ping", 4), 0);
}

TEST_F(DpdkDatapath, NoSocketIsCounted) {
  const uint64_t before = drops(DropReason::udp_no_socket);
  inject(udp_frame({1}, to_us(8)));
  std::vector<RxItem> items;
  EXPECT_EQ(poll(items), 0u);
  EXPECT_EQ(drops(DropReason::udp_no_socket), before + 1);
}

TEST_F(DpdkDatapath, ArpRequestIsAnswered) {
  auto tx = arp_request_from("10.0.0.1", kPeerMac);
  ASSERT_EQ(tx.size(), 1u);
  ArpPacket a;
  DropReason why;
  ASSERT_TRUE(parse_arp(tx[0].data() + kEthHdrLen, kArpLen, &a, &why));
  EXPECT_EQ(a.op, kArpReply);
  EXPECT_EQ(a.sha, backend_->mac());
  EXPECT_EQ(a.spa_be, ip("10.0.0.2"));
  EXPECT_EQ(a.tha, kPeerMac);
  EXPECT_EQ(load_mac(tx[0].data()), kPeerMac);
}

TEST_F(DpdkDatapath, EchoRequestIsAnswered) {
  auto f = echo_request(32);
  store_mac(f.data(), backend_->mac());
  inject(f);
  std::vector<RxItem> items;
  poll(items);
  auto tx = take_tx();
  ASSERT_EQ(tx.size(), 1u);
  EXPECT_EQ(tx[0][kEthHdrLen + kIpv4MinHdrLen], 0);  // echo reply
  EXPECT_EQ(load_be32(tx[0].data() + kEthHdrLen + 16), ip("10.0.0.1"));
}

TEST_F(DpdkDatapath, SendWaitsForArpBoundedThenGoes) {
  const Mac mac5{0x02, 0, 0, 0, 0, 0x05};
  for (uint32_t i = 0; i < kArpQueue + 2; ++i) send("10.0.0.5", 9000, 100);
  EXPECT_EQ(drops(DropReason::tx_arp_queue_full), 2u);
  worker_->flush();
  auto tx = take_tx();
  ASSERT_EQ(tx.size(), 1u);  // only the ARP request
  EXPECT_TRUE(is_arp_request_for(tx[0], "10.0.0.5"));
  arp_reply_from("10.0.0.5", mac5);
  std::vector<RxItem> items;
  poll(items);
  worker_->flush();
  tx = take_tx();
  ASSERT_EQ(tx.size(), kArpQueue);
  for (const auto& f : tx) {
    EXPECT_EQ(load_mac(f.data()), mac5);
    EXPECT_EQ(load_mac(f.data() + 6), backend_->mac());
    ASSERT_EQ(f.size(), kUdpFrameHdrLen + 100);
    const uint8_t* ip4 = f.data() + kEthHdrLen;
    EXPECT_EQ(csum_fold(csum_add(ip4, 20)), 0);
    const uint8_t* u = ip4 + 20;
    EXPECT_EQ(ntohs(load_be16(u)), 7);  // from the socket's port
    EXPECT_EQ(csum_fold(csum_add(
                  u, 108, pseudo_header_sum(ip("10.0.0.2"), ip("10.0.0.5"), kProtoUdp, 108))),
              0);
  }
  // Resolved now: the next send goes straight out.
  send("10.0.0.5", 9000, 10);
  worker_->flush();
  EXPECT_EQ(take_tx().size(), 1u);
}

// Sends to a resolved host reuse prepared headers (dgram_commit's TX flow cache); they must
// carry each datagram's own port, length, IP id and checksums, and follow the neighbour
// when its MAC changes.
TEST_F(DpdkDatapath, CachedHeadersFollowArpChanges) {
  const Mac a{0x02, 0, 0, 0, 0, 0x7A}, b{0x02, 0, 0, 0, 0, 0x7B};
  auto check = [&](const std::vector<uint8_t>& f, const Mac& mac, uint16_t port, uint32_t len) {
    ASSERT_EQ(f.size(), kUdpFrameHdrLen + len);
    EXPECT_EQ(load_mac(f.data()), mac);
    const uint8_t* ip4 = f.data() + kEthHdrLen;
    EXPECT_EQ(csum_fold(csum_add(ip4, 20)), 0);
    EXPECT_EQ(load16(ip4 + 2), 28 + len);
    const uint8_t* u = ip4 + 20;
    EXPECT_EQ(load16(u + 2), port);
    EXPECT_EQ(
        csum_fold(csum_add(u, 8 + len,
                           pseudo_header_sum(ip("10.0.0.2"), ip("10.0.0.8"), kProtoUdp, 8 + len))),
        0);
  };
  arp_request_from("10.0.0.8", a);  // learned: learn_from_requests is on
  send("10.0.0.8", 9001, 10, 1);
  send("10.0.0.8", 9002, 33, 2);
  send("10.0.0.8", 9003, 64, 3);
  worker_->flush();
  auto tx = take_tx();
  ASSERT_EQ(tx.size(), 3u);
  check(tx[0], a, 9001, 10);
  check(tx[1], a, 9002, 33);
  check(tx[2], a, 9003, 64);
  EXPECT_EQ(uint16_t(load16(tx[2].data() + 18) - load16(tx[1].data() + 18)), 1);  // IP ids
  arp_request_from("10.0.0.8", b);  // the neighbour moved
  send("10.0.0.8", 9004, 20);
  worker_->flush();
  tx = take_tx();
  ASSERT_EQ(tx.size(), 1u);
  check(tx[0], b, 9004, 20);
}

// dgram_reserve_reply sends the answer from the request's own mbuf (the payload stays where
// it was); a second answer to the same item, or one too large for the frame, gets a fresh
// buffer. Both leave with correct headers.
TEST_F(DpdkDatapath, ReplyInPlaceReusesTheRequestBuffer) {
  arp_request_from("10.0.0.1", kPeerMac);  // teaches the worker the peer's MAC
  std::vector<RxItem> items;
  const std::string req = "ping-in-place";
  inject(udp_frame(std::vector<uint8_t>(req.begin(), req.end()), to_us()));
  ASSERT_EQ(poll(items), 1u);
  const RxItem it = items[0];
  uint8_t* p = dp::reserve_reply(*worker_, it, it.len);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p, it.data);  // the request's bytes, in place
  std::memmove(p, it.data, it.len);
  p[0] = 'P';
  worker_->dgram_commit(it.len);
  uint8_t* q = worker_->dgram_reserve_reply(it, 5);  // the mbuf is taken: a fresh one
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, it.data);
  std::memcpy(q, "again", 5);
  worker_->dgram_commit(5);
  worker_->flush();
  auto tx = take_tx();
  poll(items);  // frees the held mbufs, never the one sent in place (copied by take_tx)
  ASSERT_EQ(tx.size(), 2u);
  for (const auto& f : tx) {
    EXPECT_EQ(load_mac(f.data()), kPeerMac);
    const uint8_t* ip4 = f.data() + kEthHdrLen;
    EXPECT_EQ(load_be32(ip4 + 16), ip("10.0.0.1"));
    EXPECT_EQ(csum_fold(csum_add(ip4, 20)), 0);
    const uint32_t ulen = uint32_t(f.size()) - kEthHdrLen - 20;
    EXPECT_EQ(ntohs(load_be16(ip4 + 22)), 40000);  // back to the sender's port
    EXPECT_EQ(
        csum_fold(csum_add(ip4 + 20, ulen,
                           pseudo_header_sum(ip("10.0.0.2"), ip("10.0.0.1"), kProtoUdp, ulen))),
        0);
  }
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(tx[0].data()) + kUdpFrameHdrLen,
                        tx[0].size() - kUdpFrameHdrLen),
            "Ping-in-place");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(tx[1].data()) + kUdpFrameHdrLen, 5), "again");
}

// A reply over its request with noted edits (dp::commit_reply, the path the sockperf echo
// takes) leaves with the right UDP checksum whether the backend can update the request's
// (same length: the edits are used) or must sum it (a shorter reply: they are not). The
// shorter one goes first: it also fills the TX flow cache, so the edited one takes the
// cached-flow commit where the update happens.
TEST_F(DpdkDatapath, ReplyOverRequestWithEditsHasTheRightChecksum) {
  arp_request_from("10.0.0.1", kPeerMac);
  std::vector<RxItem> items;
  for (const char* r : {"shorten-me", "edit-me-please"})
    inject(udp_frame(std::vector<uint8_t>(r, r + std::strlen(r)), to_us()));
  ASSERT_EQ(poll(items), 2u);
  const std::string want[] = {"Shor", "Edit-mE-pleasE"};
  for (int k = 0; k < 2; ++k) {
    const RxItem it = items[k];
    uint8_t* p = dp::reserve_reply(*worker_, it, it.len);
    ASSERT_EQ(p, it.data);
    dp::ReplyEdits<DpdkWorker> e;
    for (uint32_t off : {0u, 6u, 13u}) {
      if (off >= want[k].size()) continue;
      e.byte(off, p[off], uint8_t(want[k][off]));
      p[off] = uint8_t(want[k][off]);
    }
    dp::commit_reply(*worker_, it, p, uint32_t(want[k].size()), e);
  }
  worker_->flush();
  auto tx = take_tx();
  poll(items);
  ASSERT_EQ(tx.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    const auto& f = tx[k];
    const uint8_t* ip4 = f.data() + kEthHdrLen;
    const uint32_t ulen = uint32_t(f.size()) - kEthHdrLen - 20;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data()) + kUdpFrameHdrLen,
                          f.size() - kUdpFrameHdrLen),
              want[k]);
    EXPECT_NE(load_be16(ip4 + 26), 0) << "a checksum was written";
    EXPECT_EQ(
        csum_fold(csum_add(ip4 + 20, ulen,
                           pseudo_header_sum(ip("10.0.0.2"), ip("10.0.0.1"), kProtoUdp, ulen))),
        0)
        << k;
  }
}

TEST_F(DpdkDatapath, UnsolicitedReplyIsNotLearned) {
  const uint64_t before = drops(DropReason::arp_unsolicited_reply);
  arp_reply_from("10.0.0.6", Mac{0x02, 0, 0, 0, 0, 0x66});
  std::vector<RxItem> items;
  poll(items);
  EXPECT_EQ(drops(DropReason::arp_unsolicited_reply), before + 1);
  send("10.0.0.6", 9000, 10);  // still unknown: asks
  worker_->flush();
  auto tx = take_tx();
  ASSERT_EQ(tx.size(), 1u);
  EXPECT_TRUE(is_arp_request_for(tx[0], "10.0.0.6"));
  // Now the reply is solicited: learned, and the waiting datagram goes out.
  arp_reply_from("10.0.0.6", Mac{0x02, 0, 0, 0, 0, 0x66});
  poll(items);
  worker_->flush();
  tx = take_tx();
  ASSERT_EQ(tx.size(), 1u);
  EXPECT_EQ(load_mac(tx[0].data()), (Mac{0x02, 0, 0, 0, 0, 0x66}));
}

TEST_F(DpdkDatapath, NoRouteAndTooLarge) {
  send("192.168.7.7", 9000, 10);  // off-link, no gateway
  EXPECT_EQ(drops(DropReason::tx_no_route), 1u);
  send("10.0.0.2", 9000, 10);   // ourselves
  send("224.1.2.3", 9000, 10);  // multicast
  EXPECT_EQ(drops(DropReason::tx_no_route), 3u);
  worker_->flush();
  EXPECT_TRUE(take_tx().empty());  // and no ARP request for any of them
  EXPECT_EQ(worker_->dgram_reserve(0, Endpoint{ip("10.0.0.5"), htons(1)}, kMaxDatagram + 1),
            nullptr);
  EXPECT_EQ(drops(DropReason::tx_too_large), 1u);
}

// Fragments (peer -> us) of a datagram with `len` payload bytes, 1480 L4 bytes each.
std::vector<std::vector<uint8_t>> fragments(const UdpHeaderSpec& h, uint32_t len, uint16_t id) {
  std::vector<uint8_t> l4(kUdpHdrLen + len);
  for (uint32_t i = 0; i < len; ++i) l4[kUdpHdrLen + i] = uint8_t(i * 13);
  UdpHeaderSpec hh = h;
  hh.ip_id = id;
  write_udp_header(l4.data(), hh, l4.data() + kUdpHdrLen, len);
  std::vector<std::vector<uint8_t>> out;
  const uint32_t step = frag_payload(1500);
  for (uint32_t off = 0; off < l4.size(); off += step) {
    const uint32_t n = std::min<uint32_t>(step, uint32_t(l4.size()) - off);
    std::vector<uint8_t> f(kEthHdrLen + kIpv4MinHdrLen + n);
    write_fragment_headers(f.data(), hh, off, n, off + n < l4.size());
    std::memcpy(f.data() + kEthHdrLen + kIpv4MinHdrLen, l4.data() + off, n);
    out.push_back(std::move(f));
  }
  return out;
}

TEST_F(DpdkDatapath, FragmentsAreReassembled) {
  for (auto& f : fragments(to_us(), 1800, 77)) inject(f);
  std::vector<RxItem> items;
  ASSERT_EQ(poll(items), 1u);
  ASSERT_EQ(items[0].len, 1800u);
  for (uint32_t i = 0; i < 1800; ++i) ASSERT_EQ(items[0].data[i], uint8_t(i * 13)) << i;
}

TEST_F(DpdkDatapath, ReassembledTooLargeIsDropped) {
  std::vector<RxItem> items;
  for (auto& f : fragments(to_us(), kMaxDatagram + 10, 78)) inject(f);
  EXPECT_EQ(poll(items), 0u);
  EXPECT_EQ(drops(DropReason::udp_too_large), 1u);
  EXPECT_EQ(worker_->counters().rx_truncated.get(), 1u);
  for (auto& f : fragments(to_us(), kMaxDatagram + 500, 80)) inject(f);
  EXPECT_EQ(poll(items), 0u);
  EXPECT_EQ(drops(DropReason::ip_reasm_too_large), 1u);
}

TEST_F(DpdkDatapath, IncompleteReassemblyTimesOut) {
  auto fr = fragments(to_us(), 1800, 79);
  inject(fr[0]);
  std::vector<RxItem> items;
  EXPECT_EQ(poll(items), 0u);
  // frag_timeout_ms = 100; housekeeping runs every 100 ms.
  for (int i = 0; i < 50 && drops(DropReason::ip_frag_dropped) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    poll(items, 1);
  }
  EXPECT_EQ(drops(DropReason::ip_frag_dropped), 1u);
}

TEST_F(DpdkDatapath, LargeSendIsFragmented) {
  const Mac mac5{0x02, 0, 0, 0, 0, 0x05};
  send("10.0.0.5", 9000, 1800);  // 10.0.0.5 resolved by an earlier test, or asks now
  worker_->flush();
  auto tx = take_tx();
  if (tx.size() == 1 && is_arp_request_for(tx[0], "10.0.0.5")) {
    arp_reply_from("10.0.0.5", mac5);
    std::vector<RxItem> items;
    poll(items);
    worker_->flush();
    tx = take_tx();
  }
  ASSERT_EQ(tx.size(), 2u);
  const uint8_t* a = tx[0].data() + kEthHdrLen;
  const uint8_t* b = tx[1].data() + kEthHdrLen;
  EXPECT_EQ(load16(a + 6), 0x2000);                     // MF, offset 0
  EXPECT_EQ(load16(b + 6), 1480 / 8);                   // last, offset 1480
  EXPECT_EQ(load16(a + 4), load16(b + 4));              // same id
  EXPECT_EQ(load16(a + 2) + load16(b + 2) - 40, 1808);  // UDP header + payload
  EXPECT_EQ(load16(a + 20 + 4), 1808);                  // UDP length
  EXPECT_LE(tx[0].size(), 1514u);
}

TEST_F(DpdkDatapath, EverySendIsSentOrCounted) {
  // Make sure 10.0.0.5 is resolved, then overrun the TX ring (1023 frames) without reading it.
  send("10.0.0.5", 9000, 10);
  worker_->flush();
  if (auto tx = take_tx(); tx.size() == 1 && is_arp_request_for(tx[0], "10.0.0.5")) {
    arp_reply_from("10.0.0.5", Mac{0x02, 0, 0, 0, 0, 0x05});
    std::vector<RxItem> items;
    poll(items);
    worker_->flush();
    take_tx();
  }
  const uint64_t ring0 = drops(DropReason::tx_ring_full), mbuf0 = drops(DropReason::tx_no_mbuf);
  uint64_t reserved = 0, refused = 0;
  for (int i = 0; i < 1500; ++i) {
    uint8_t* p = worker_->dgram_reserve(0, Endpoint{ip("10.0.0.5"), htons(9000)}, 64);
    if (!p) {
      ++refused;
      continue;
    }
    std::memset(p, 1, 64);
    worker_->dgram_commit(64);
    ++reserved;
  }
  worker_->flush();
  const uint64_t sent = take_tx().size();
  const uint64_t ring_full = drops(DropReason::tx_ring_full) - ring0;
  EXPECT_GT(ring_full, 0u);
  EXPECT_EQ(sent + ring_full, reserved);
  EXPECT_EQ(refused, drops(DropReason::tx_no_mbuf) - mbuf0);
  EXPECT_EQ(reserved + refused, 1500u);
}

TEST_F(DpdkDatapath, UnansweredArpFailsQueuedSends) {
  send("10.0.0.7", 9000, 10);
  worker_->flush();
  ASSERT_EQ(take_tx().size(), 1u);
  // kArpMaxTries requests kArpRetryNs apart, then the queued datagram is dropped.
  std::vector<RxItem> items;
  int requests = 1;
  for (int i = 0; i < 250 && drops(DropReason::tx_arp_failed) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    poll(items, 1);
    worker_->flush();
    for (auto& f : take_tx()) requests += is_arp_request_for(f, "10.0.0.7");
  }
  EXPECT_EQ(drops(DropReason::tx_arp_failed), 1u);
  EXPECT_EQ(requests, int(kArpMaxTries));
  send("10.0.0.7", 9000, 10);  // failed neighbour: dropped at once
  EXPECT_EQ(drops(DropReason::tx_arp_failed), 2u);
}

// The link as the control thread publishes it (counters_by_name, first entries): the
// "link.<port>.*" gauges follow the port down and up.
TEST_F(DpdkDatapath, LinkStateIsPublishedFirst) {
  const uint16_t port = backend_->port_id();
  const std::string link = "link." + std::to_string(port) + ".";
  auto value = [&](const std::string& name) -> std::optional<uint64_t> {
    for (const auto& [n, v] : backend_->counters_by_name())
      if (n == name) return v;
    return std::nullopt;
  };
  const auto first = backend_->counters_by_name();
  ASSERT_GE(first.size(), 4u);
  EXPECT_EQ(first[0].first, link + "up");
  EXPECT_EQ(first[0].second, 1u);
  EXPECT_GT(value(link + "speed_mbps").value_or(0), 0u);  // net_ring: 10G
  EXPECT_EQ(value(link + "full_duplex"), 1u);
  ASSERT_TRUE(value(link + "autoneg"));
  ASSERT_EQ(rte_eth_dev_set_link_down(port), 0);
  EXPECT_FALSE(backend_->link_state().up);
  EXPECT_EQ(value(link + "up"), 0u);
  EXPECT_EQ(value(link + "speed_mbps"), 0u);  // no speed on a link that is down
  ASSERT_EQ(rte_eth_dev_set_link_up(port), 0);
  EXPECT_TRUE(backend_->link_state().up);
  EXPECT_EQ(value(link + "up"), 1u);
  // The workers see the link again (housekeep) before the next test uses the port.
  std::vector<RxItem> items;
  for (int i = 0; i < 20 && !backend_->link_up(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    poll(items, 1);
  }
  EXPECT_TRUE(backend_->link_up());
}

TEST_F(DpdkDatapath, LinkDownStopsRxAndDropsTx) {
  const uint16_t port = backend_->port_id();
  ASSERT_EQ(rte_eth_dev_set_link_down(port), 0);
  std::vector<RxItem> items;
  for (int i = 0; i < 20 && backend_->link_up(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    poll(items, 1);
  }
  EXPECT_FALSE(backend_->link_up());
  inject(udp_frame({1}, to_us()));
  EXPECT_EQ(poll(items), 0u);
  EXPECT_EQ(rte_ring_count(ring_), 1u);  // not polled while down
  send("10.0.0.5", 9000, 10);
  worker_->flush();
  EXPECT_GE(drops(DropReason::tx_link_down), 1u);
  ASSERT_EQ(rte_eth_dev_set_link_up(port), 0);
  for (int i = 0; i < 20 && !backend_->link_up(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    poll(items, 1);
  }
  EXPECT_TRUE(backend_->link_up());
  if (items.empty()) poll(items);
  EXPECT_EQ(items.size(), 1u);  // the frame that waited
}

// TCP segments take their next hop's MAC from a per-destination cache (tcp_route): it
// follows the ARP table when the neighbour moves, like the UDP headers above. Each
// connect() sends one SYN at once; the connections stay in SYN-SENT until the end.
TEST_F(DpdkDatapath, TcpSegmentsFollowArpChanges) {
  const Mac a{0x02, 0, 0, 0, 0, 0x8A}, b{0x02, 0, 0, 0, 0, 0x8B};
  std::vector<ConnId> conns;
  auto syn_to = [&](uint16_t port) -> std::vector<uint8_t> {
    const ConnId c = worker_->connect(kTcpClient, Endpoint{ip("10.0.0.9"), htons(port)});
    EXPECT_NE(c, kNoConn);
    conns.push_back(c);
    worker_->flush();
    auto tx = take_tx();
    EXPECT_EQ(tx.size(), 1u);
    if (tx.size() != 1) return {};
    const std::vector<uint8_t>& f = tx[0];
    EXPECT_GE(f.size(), kEthHdrLen + 20 + kTcpHdrLen);
    if (f.size() < kEthHdrLen + 20 + kTcpHdrLen) return {};
    const uint8_t* ip4 = f.data() + kEthHdrLen;
    EXPECT_EQ(load16(f.data() + 12), kEtherTypeIpv4);
    EXPECT_EQ(ip4[9], kProtoTcp);
    EXPECT_EQ(csum_fold(csum_add(ip4, 20)), 0);
    EXPECT_EQ(load16(ip4 + 20 + 2), port);
    EXPECT_EQ(ip4[20 + 13], kTcpSyn);
    return f;
  };
  arp_request_from("10.0.0.9", a);  // learned: learn_from_requests is on
  auto f = syn_to(80);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(load_mac(f.data()), a);
  f = syn_to(81);  // the cached next hop
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(load_mac(f.data()), a);
  arp_request_from("10.0.0.9", b);  // the neighbour moved
  f = syn_to(82);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(load_mac(f.data()), b);
  f = syn_to(83);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(load_mac(f.data()), b);
  for (ConnId c : conns) worker_->close(c);  // SYN-SENT: released at once, nothing sent
  std::vector<RxItem> items;
  poll(items);  // hands out the closed connections' stream_closed items
  EXPECT_EQ(items.size(), 4u);
  for (const RxItem& it : items) EXPECT_EQ(it.kind, RxKind::stream_closed);
  EXPECT_TRUE(take_tx().empty());
}

}  // namespace
}  // namespace cw::dp
