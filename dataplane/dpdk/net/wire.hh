// Wire-level building blocks of the user-space stack: byte-order helpers, MAC addresses,
// the Internet checksum and the interface's addresses. Pure code, no DPDK: the codecs built
// on it are unit-tested and fuzzed without an EAL.
//
// Conventions: IPv4 addresses and ports are uint32_t/uint16_t in network byte order (as in
// dp::Endpoint and on the wire); lengths and offsets are bytes.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cw::dp::net {

inline constexpr uint32_t kEthHdrLen = 14;
inline constexpr uint32_t kEthMinFrame = 60;  // without FCS; shorter frames are padded
inline constexpr uint32_t kIpv4MinHdrLen = 20;
inline constexpr uint32_t kUdpHdrLen = 8;
inline constexpr uint32_t kIcmpHdrLen = 8;
inline constexpr uint32_t kArpLen = 28;  // Ethernet/IPv4 ARP body
inline constexpr uint32_t kUdpFrameHdrLen = kEthHdrLen + kIpv4MinHdrLen + kUdpHdrLen;  // 42
inline constexpr uint32_t kMaxIpv4Len = 65535;
inline constexpr uint32_t kMaxUdpPayload = kMaxIpv4Len - kIpv4MinHdrLen - kUdpHdrLen;  // 65507

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeQinQ = 0x88A8;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kDefaultTtl = 64;

inline uint16_t load16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void store16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
// Network-order values (addr_be, port_be) are copied as bytes.
inline uint32_t load_be32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void store_be32(uint8_t* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}
inline uint16_t load_be16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store_be16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

using Mac = std::array<uint8_t, 6>;
inline constexpr Mac kBroadcastMac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
inline constexpr Mac kZeroMac{};
// Group bit set: multicast, including broadcast.
inline bool is_multicast_mac(const Mac& m) {
  return (m[0] & 1) != 0;
}
inline Mac load_mac(const uint8_t* p) {
  Mac m;
  std::memcpy(m.data(), p, 6);
  return m;
}
inline void store_mac(uint8_t* p, const Mac& m) {
  std::memcpy(p, m.data(), 6);
}

// Folds a one's-complement sum to 16 bits (RFC 1071), end-around carries included, without
// a loop: adding s to itself rotated by 32 bits leaves hi +' lo (the one's-complement sum of
// its 32-bit halves) in the upper half, because the carry out of the lower half's add is
// exactly the end-around carry of the upper one; the same again from 32 to 16 bits. The
// result is 0 only for s == 0, else in [1, 0xFFFF] and congruent to s mod 0xFFFF: the same
// value as folding by repeated shift-and-add.
inline uint16_t fold16(uint64_t s) {
  s += std::rotr(s, 32);
  uint32_t x = uint32_t(s >> 32);
  x += std::rotr(x, 16);
  return uint16_t(x >> 16);
}

// A sum of native-order words (as loaded from the wire) folded to 16 bits and swapped once:
// the same value as the sum of those bytes read as big-endian 16-bit words (RFC 1071: the
// one's-complement sum does not depend on byte order).
inline uint64_t fold_native(uint64_t s) {
  const uint16_t f = fold16(s);
  if constexpr (std::endian::native == std::endian::little) return __builtin_bswap16(f);
  return f;
}

inline uint64_t load_native64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// A 64-bit one's-complement accumulator of native 64-bit words. 64-bit words may be summed
// instead of 16-bit ones because 2^16 == 1 (mod 0xFFFF): every 16-bit lane keeps its weight
// after the fold. The carry out of each add is counted in `carries` rather than added back
// at once: an add is then one add plus one add-with-carry (__builtin_add_overflow compiles
// to add/adc with GCC and clang), and consecutive adds do not wait on each other's
// end-around carry. `carries` is at most one per word added.
struct CsumAcc {
  uint64_t sum = 0;
  uint64_t carries = 0;
  void add(uint64_t w) { carries += __builtin_add_overflow(sum, w, &sum); }
  void add(const CsumAcc& o) {
    add(o.sum);
    carries += o.carries;
  }
  // The one's-complement sum as one 64-bit word (end-around carries added back).
  uint64_t value() const {
    const uint64_t s = sum + carries;
    return s + (s < carries);
  }
};

// The one's-complement sum of the changes to a datagram's payload, for updating its UDP
// checksum (RFC 1624) rather than summing the payload again: the DPDK backend's
// dp::ReplyEdits (dataplane/io.hh), which a service fills in while writing its reply.
class CsumEdits {
 public:
  // The payload byte at offset `off` was `was` and is now `now`. Summed as 16-bit words in
  // the machine's byte order (the order the checksum code loads them in): a byte at an even
  // offset is the first byte of its word.
  void byte(uint32_t off, uint8_t was, uint8_t now) {
    const bool first = (off & 1) == 0;
    const unsigned shift = (first == (std::endian::native == std::endian::little)) ? 0 : 8;
    sum_ += (uint64_t{now} << shift) + (0xFFFFu ^ (uint32_t{was} << shift));  // + now - was
  }
  uint64_t native_sum() const { return sum_; }  // one's-complement sum of the changes

 private:
  uint64_t sum_ = 0;
};

// csum_accumulate adds `len` bytes to a native-order accumulator (fold it with fold_native
// or test it with csum_native_ok); csum_add is the RFC 1071 one's-complement sum of `len`
// bytes as big-endian 16-bit words, unfolded: `sum` plus a value below 2^16, so callers can
// chain partial sums and fold once.
//
// RFC 1071: the sum does not depend on byte order, so the block is added as native 64-bit
// words (CsumAcc), folded to 16 bits and swapped once to big-endian terms. Loads go through
// memcpy (any alignment). 32-byte steps into two accumulators keep the adds of neighbouring
// words independent. Every partial word starts at an even offset of the block, so its bytes
// land in the same 16-bit lanes as in a full word; a trailing odd byte is the high byte of
// a last big-endian word (its pair is zero). No byte outside [p, p + len) is read.
//
// Why not leave it to the vectoriser (the previous code): for the 20- to 100-byte blocks of
// a small datagram its setup and horizontal reduction cost more than the add/adc chain, and
// on a 1480-byte block the chain was faster too (cw-stack-bench BM_Checksum).

#if defined(__x86_64__)
// x86-64: s plus four words as one add-with-carry chain, the last carry added back (end-
// around; it cannot carry again, as an add that carries leaves at most 2^64 - 2): five
// instructions per 32 bytes where CsumAcc needs eight. The words are the caller's loads
// ("rm": the compiler may fold them into the adds), so the asm touches no memory. GCC's
// _addcarry_u64 does not give this chain in a loop (it saves and restores the flag around
// the loop test).
inline uint64_t csum_adc4(uint64_t s, uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3) {
  asm("addq %1, %0\n\t"
      "adcq %2, %0\n\t"
      "adcq %3, %0\n\t"
      "adcq %4, %0\n\t"
      "adcq $0, %0"
      : "+r"(s)
      : "rm"(w0), "rm"(w1), "rm"(w2), "rm"(w3)
      : "cc");
  return s;
}
inline constexpr size_t kCsumOneChainBelow = 256;  // bytes
#endif

// A block of at least 8 bytes: whole words, then the 1-7 trailing bytes as one load.
inline void csum_accumulate_words(CsumAcc& a, const uint8_t* p, size_t len) {
  const uint8_t* const end = p + len;
  CsumAcc b;
#if defined(__x86_64__)
  // Short blocks (a small datagram's) take the single chain: fewer instructions. Long ones
  // stay on the two accumulators below, whose chains overlap (one carry flag cannot):
  // cw-stack-bench BM_Checksum 72 B 3.0 -> 2.8 ns (BM_ParseUdpFrameFast 64 B 9.4 -> 8.5 ns),
  // but 1480 B 35 -> 40 ns when it too took one chain.
  if (len < kCsumOneChainBelow) {
    for (; len >= 32; p += 32, len -= 32)
      a.sum = csum_adc4(a.sum, load_native64(p), load_native64(p + 8), load_native64(p + 16),
                        load_native64(p + 24));
  }
#endif
  for (; len >= 32; p += 32, len -= 32) {
    a.add(load_native64(p));
    b.add(load_native64(p + 8));
    a.add(load_native64(p + 16));
    b.add(load_native64(p + 24));
  }
  for (; len >= 8; p += 8, len -= 8) a.add(load_native64(p));
  if (len) {
    // The last 1-7 bytes: reload the 8 bytes that end at `end` (all inside the block) and
    // shift out the ones already added. The bytes kept start at an even offset, so they
    // keep their 16-bit lanes; the zeros shifted in complete a trailing odd byte's word.
    const uint64_t w = load_native64(end - 8);
    const unsigned drop = unsigned(8 - len) * 8;
    b.add(std::endian::native == std::endian::little ? w >> drop : w << drop);
  }
  a.add(b);
}
// A block shorter than one word.
inline void csum_accumulate_short(CsumAcc& a, const uint8_t* p, size_t len) {
  if (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    a.add(w);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    a.add(w);
    p += 2;
    len -= 2;
  }
  if (len) {
    const uint8_t last[2] = {p[0], 0};
    uint16_t w;
    std::memcpy(&w, last, 2);
    a.add(w);
  }
}
inline void csum_accumulate(CsumAcc& a, const uint8_t* p, size_t len) {
  if (len >= 8)
    csum_accumulate_words(a, p, len);
  else
    csum_accumulate_short(a, p, len);
}
inline uint64_t csum_add(const uint8_t* p, size_t len, uint64_t sum = 0) {
  CsumAcc a;
  csum_accumulate(a, p, len);
  return sum + fold_native(a.value());
}
// True if the native-order sum of a block that includes its checksum field is right: it
// folds to 0xFFFF (the same test as csum_fold(csum_add(...)) == 0, without the byte swap,
// which leaves 0xFFFF as it is). An all-zero block (fold 0) is wrong, as there.
inline bool csum_native_ok(const CsumAcc& a) {
  return fold16(a.value()) == 0xFFFF;
}
// A big-endian 16-bit term (protocol, length) as the native word it would be loaded as.
inline uint64_t native_term(uint16_t v) {
  return htons(v);
}
inline uint16_t csum_fold_raw(uint64_t sum) {  // folded sum, not complemented
  return fold16(sum);
}
// The value to store in a checksum field (host order; write with store16). A block whose
// stored checksum is right sums to 0xFFFF, so csum_fold() over it is 0.
inline uint16_t csum_fold(uint64_t sum) {
  return uint16_t(~csum_fold_raw(sum));
}

// Sum of the UDP/TCP pseudo-header (RFC 768): addresses, protocol, L4 length. Computed in
// registers: the addresses as native words like csum_add (fold, swap once), protocol and
// length as the big-endian 16-bit words they are on the wire.
inline uint64_t pseudo_header_sum(uint32_t src_be, uint32_t dst_be, uint8_t proto,
                                  uint32_t l4_len) {
  return fold_native(uint64_t(src_be) + dst_be) + proto + (l4_len & 0xFFFF);
}

inline uint32_t host(uint32_t be) {
  return ntohl(be);
}

// One address of the interface with its prefix (e.g. 10.0.0.2/24).
struct LocalAddr {
  uint32_t addr_be = 0;
  uint8_t prefix_len = 32;
  // A 64-bit shift needs no branch for /0 (shift by 32); prefix_len is at most 32.
  uint32_t mask_be() const { return htonl(uint32_t(uint64_t{0xFFFFFFFF} << (32 - prefix_len))); }
  // ~mask_be(): the host part (all ones for /0, none for /32).
  uint32_t host_bits_be() const { return htonl(uint32_t(uint64_t{0xFFFFFFFF} >> prefix_len)); }
  // The subnet's directed broadcast (host bits all ones), if ip is it; a /32 has none.
  bool is_directed_broadcast(uint32_t ip_be) const {
    const uint32_t m = mask_be();
    return m != 0xFFFFFFFFu && ip_be == (addr_be | ~m);
  }
};

// What an address is to the interface (Interface::classify).
enum class AddrClass : uint8_t { other, local, broadcast };

inline constexpr size_t kMaxLocalAddrs = 8;

// The stack's view of its port: MAC, addresses, default gateway, MTU. Built at setup,
// read-only on the datapath (shared by every worker of a port).
struct Interface {
  Mac mac{};
  std::array<LocalAddr, kMaxLocalAddrs> addrs{};
  uint8_t naddrs = 0;
  uint32_t gateway_be = 0;  // 0 = off-link destinations are unreachable
  uint16_t mtu = 1500;      // IPv4 bytes per frame (Ethernet payload)

  bool is_local(uint32_t ip_be) const {
    for (unsigned i = 0; i < naddrs; ++i)
      if (addrs[i].addr_be == ip_be) return true;
    return false;
  }
  // Limited broadcast, or the directed broadcast of one of our subnets.
  bool is_broadcast(uint32_t ip_be) const {
    if (ip_be == 0xFFFFFFFFu) return true;
    for (unsigned i = 0; i < naddrs; ++i)
      if (addrs[i].is_directed_broadcast(ip_be)) return true;
    return false;
  }
  // is_local and is_broadcast in one pass over the addresses, for the per-packet checks:
  // local if is_local(ip), else broadcast if is_broadcast(ip), else other. The common
  // answer (our first address) needs one compare.
  AddrClass classify(uint32_t ip_be) const {
    if (naddrs != 0 && addrs[0].addr_be == ip_be) return AddrClass::local;
    bool bcast = ip_be == 0xFFFFFFFFu;
    for (unsigned i = 0; i < naddrs; ++i) {
      if (addrs[i].addr_be == ip_be) return AddrClass::local;
      bcast = bcast || addrs[i].is_directed_broadcast(ip_be);
    }
    return bcast ? AddrClass::broadcast : AddrClass::other;
  }
  // Index of the address whose subnet holds ip, or -1.
  int on_link(uint32_t ip_be) const {
    for (unsigned i = 0; i < naddrs; ++i) {
      const uint32_t m = addrs[i].mask_be();
      if ((ip_be & m) == (addrs[i].addr_be & m)) return int(i);
    }
    return -1;
  }
  // Next hop for a destination: itself when on-link, else the gateway (0 = no route).
  uint32_t next_hop(uint32_t dst_be) const { return on_link(dst_be) >= 0 ? dst_be : gateway_be; }
  // Source address for a destination: the address of its subnet, else the first address.
  uint32_t source_for(uint32_t dst_be) const {
    const int i = on_link(dst_be);
    return i >= 0 ? addrs[unsigned(i)].addr_be : (naddrs ? addrs[0].addr_be : 0);
  }
};

// Sources no host may send from (RFC 1122 3.2.1.3, RFC 1812 5.3.7): 0/8, 127/8, class D/E,
// limited broadcast. The caller also rejects its own addresses.
inline bool is_martian_src(uint32_t ip_be) {
  const uint32_t h = host(ip_be);
  const uint32_t top = h >> 24;
  return top == 0 || top == 127 || top >= 224;
}
inline bool is_multicast_ip(uint32_t ip_be) {
  return (host(ip_be) >> 28) == 0xE;
}

}  // namespace cw::dp::net
