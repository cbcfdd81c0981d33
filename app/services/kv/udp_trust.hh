// Which UDP sources have shown that they receive, for the amplification cap (docs/kv.md,
// "UDP"): a source in the configured allow-list (`udp_trusted`, CIDRs), or one with an open
// TCP session on this worker or one that ended less than `udp_tcp_trust` seconds ago (its
// handshake proved the address answers). Addresses are IPv4 in network byte order.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace cw::kv {

// "a.b.c.d/len" (len 0..32; without "/len", one address). net_be has the host bits cleared.
struct Cidr {
  uint32_t net_be = 0;
  uint32_t mask_be = 0;
  bool contains(uint32_t addr_be) const { return (addr_be & mask_be) == net_be; }
};
std::optional<Cidr> parse_cidr(std::string_view s);
inline bool in_any(std::span<const Cidr> list, uint32_t addr_be) {
  for (const Cidr& c : list)
    if (c.contains(addr_be)) return true;
  return false;
}

// The addresses of this worker's recent TCP peers. Owner worker only. A fixed open-addressed
// table sized at setup: a lookup or update probes at most kProbe slots and never allocates.
// When every slot an address may use holds an open session, the address is not recorded
// (returns false; the caller counts it) and simply stays unproven.
class TcpPeers {
 public:
  static constexpr uint32_t kProbe = 8;

  // slots is rounded up to a power of two (at least kProbe); window_s 0 = remember only
  // open sessions.
  TcpPeers(uint32_t slots, uint32_t window_s);

  bool opened(uint32_t addr_be, uint32_t now_s);
  void closed(uint32_t addr_be, uint32_t now_s);
  bool proven(uint32_t addr_be, uint32_t now_s) const;
  uint32_t slots() const { return uint32_t(t_.size()); }

 private:
  struct Entry {
    uint32_t addr_be = 0;  // 0: free (0.0.0.0 is never a peer)
    uint32_t open = 0;     // sessions open now
    uint32_t last_s = 0;   // when the last one opened or closed (unix s)
  };
  bool live(const Entry& e, uint32_t now_s) const {
    return e.addr_be != 0 && (e.open != 0 || now_s - e.last_s < window_s_);
  }
  uint32_t home(uint32_t addr_be) const { return (addr_be * 0x9E3779B1u) >> shift_; }
  Entry* find(uint32_t addr_be);

  std::vector<Entry> t_;
  uint32_t shift_ = 0;
  uint32_t window_s_ = 0;
};

}  // namespace cw::kv
