// UDP sources that have shown they receive (udp_trust.hh).
#include "app/services/kv/udp_trust.hh"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <string>

#include "dataplane/io.hh"

namespace cw::kv {

std::optional<Cidr> parse_cidr(std::string_view s) {
  auto p = dp::parse_prefix(std::string(s));
  if (!p) return std::nullopt;
  Cidr c;
  c.mask_be = htonl(uint32_t(uint64_t{0xFFFFFFFF} << (32 - p.value().len)));
  c.net_be = p.value().addr_be & c.mask_be;
  return c;
}

TcpPeers::TcpPeers(uint32_t slots, uint32_t window_s)
    : t_(std::bit_ceil(std::max(slots, kProbe))), window_s_(window_s) {
  shift_ = 32 - uint32_t(std::countr_zero(uint32_t(t_.size())));
}

TcpPeers::Entry* TcpPeers::find(uint32_t addr_be) {
  const uint32_t mask = uint32_t(t_.size()) - 1, h = home(addr_be);
  for (uint32_t i = 0; i < kProbe; ++i)
    if (t_[(h + i) & mask].addr_be == addr_be) return &t_[(h + i) & mask];
  return nullptr;
}

bool TcpPeers::opened(uint32_t addr_be, uint32_t now_s) {
  if (addr_be == 0) return false;
  if (Entry* e = find(addr_be)) {
    ++e->open;
    e->last_s = now_s;
    return true;
  }
  // A free slot, else the one whose proof lapsed, else the least recent closed one.
  const uint32_t mask = uint32_t(t_.size()) - 1, h = home(addr_be);
  Entry* pick = nullptr;
  for (uint32_t i = 0; i < kProbe; ++i) {
    Entry& e = t_[(h + i) & mask];
    if (!live(e, now_s)) {
      pick = &e;
      break;
    }
    if (e.open == 0 && (!pick || now_s - e.last_s > now_s - pick->last_s)) pick = &e;
  }
  if (!pick) return false;
  *pick = Entry{addr_be, 1, now_s};
  return true;
}

void TcpPeers::closed(uint32_t addr_be, uint32_t now_s) {
  Entry* e = addr_be ? find(addr_be) : nullptr;
  if (!e) return;
  if (e->open) --e->open;
  e->last_s = now_s;
}

bool TcpPeers::proven(uint32_t addr_be, uint32_t now_s) const {
  const uint32_t mask = uint32_t(t_.size()) - 1, h = home(addr_be);
  for (uint32_t i = 0; i < kProbe; ++i) {
    const Entry& e = t_[(h + i) & mask];
    if (e.addr_be == addr_be) return live(e, now_s);
  }
  return false;
}

}  // namespace cw::kv
