#include "dataplane/dpdk/net/arp.hh"

#include <bit>

namespace cw::dp::net {

ArpTable::ArpTable(uint32_t entries) {
  const uint32_t n = std::bit_ceil(entries < kArpWays ? kArpWays : entries);
  e_ = std::make_unique<Entry[]>(n);
  mask_ = n - 1;
}

ArpTable::Entry* ArpTable::bucket(uint32_t ip_be) {
  // Multiplicative hash; the low address bits vary most within a subnet.
  const uint32_t h = (host(ip_be) * 0x9E3779B1u) >> 8;
  return &e_[(h * kArpWays) & mask_];
}

ArpTable::Entry* ArpTable::find(uint32_t ip_be) {
  Entry* b = bucket(ip_be);
  for (uint32_t w = 0; w < kArpWays; ++w)
    if (b[w].state != State::free && b[w].ip_be == ip_be) return &b[w];
  return nullptr;
}

ArpTable::Entry* ArpTable::claim(uint32_t ip_be, int64_t now, bool evict) {
  Entry* b = bucket(ip_be);
  Entry* victim = nullptr;
  for (uint32_t w = 0; w < kArpWays; ++w) {
    Entry& e = b[w];
    if (e.state == State::free) return &e;
    const bool over = (e.state == State::failed && now >= e.expires_ns) ||
                      (e.state == State::reachable && !e.pending && now >= e.expires_ns);
    if (over) return &e;
    if (evict && e.state == State::reachable && !e.pending &&
        (!victim || e.expires_ns < victim->expires_ns))
      victim = &e;
  }
  return victim;
}

void ArpTable::start_request(Entry& e, int64_t now) {
  e.pending = true;
  e.tries = 1;
  e.retry_ns = now + kArpRetryNs;
}

ArpLookupResult ArpTable::lookup(uint32_t ip_be, int64_t now) {
  Entry* e = find(ip_be);
  if (!e) {
    e = claim(ip_be, now, /*evict=*/true);
    if (!e) return {ArpLookup::table_full, {}};
    ++gen_;  // the claimed slot may have held a live entry
    *e = Entry{};
    e->ip_be = ip_be;
    e->state = State::incomplete;
    start_request(*e, now);
    return {ArpLookup::miss_request, {}};
  }
  switch (e->state) {
    case State::incomplete:
      return {ArpLookup::miss_pending, {}};
    case State::failed:
      if (now < e->expires_ns) return {ArpLookup::failed, {}};
      e->state = State::incomplete;
      start_request(*e, now);
      return {ArpLookup::miss_request, {}};
    case State::reachable:
      if (now < e->expires_ns) return {ArpLookup::hit, e->mac, e->expires_ns};
      if (now < e->expires_ns + kArpStaleNs) {
        if (e->pending) return {ArpLookup::hit, e->mac};
        start_request(*e, now);
        return {ArpLookup::hit_refresh, e->mac};
      }
      e->state = State::incomplete;
      ++gen_;
      if (e->pending) return {ArpLookup::miss_pending, {}};
      start_request(*e, now);
      return {ArpLookup::miss_request, {}};
    case State::free:
      break;
  }
  return {ArpLookup::table_full, {}};  // unreachable: find() skips free entries
}

bool ArpTable::on_reply(uint32_t ip_be, const Mac& mac, int64_t now) {
  Entry* e = find(ip_be);
  if (!e || !e->pending) return false;
  ++gen_;
  e->mac = mac;
  e->state = State::reachable;
  e->pending = false;
  e->tries = 0;
  e->expires_ns = now + kArpReachableNs;
  return true;
}

bool ArpTable::on_request(uint32_t ip_be, const Mac& mac, int64_t now) {
  Entry* e = find(ip_be);
  if (!e) {
    e = claim(ip_be, now, /*evict=*/false);
    if (!e) return false;
    *e = Entry{};
    e->ip_be = ip_be;
  }
  ++gen_;
  e->mac = mac;
  e->state = State::reachable;
  e->pending = false;
  e->tries = 0;
  e->expires_ns = now + kArpReachableNs;
  return true;
}

uint32_t ArpTable::size() const {
  uint32_t n = 0;
  for (uint32_t i = 0; i <= mask_; ++i) n += e_[i].state != State::free;
  return n;
}

ArpDecision arp_input(const ArpPacket& a, const Mac& eth_src, const Interface& ifc, ArpTable& table,
                      const ArpPolicy& policy, int64_t now) {
  ArpDecision d;
  // The sender must be a unicast station; spa 0 is an RFC 5227 probe (answered, not learned).
  // A sender claiming one of our addresses is a conflict or a spoof: never answered.
  const bool probe = a.spa_be == 0;
  if (is_multicast_mac(a.sha) || a.sha == kZeroMac || is_multicast_mac(eth_src) ||
      (!probe && (is_martian_src(a.spa_be) || ifc.is_broadcast(a.spa_be))) ||
      ifc.is_local(a.spa_be)) {
    d.drop = DropReason::arp_bad_sender;
    return d;
  }
  if (!ifc.is_local(a.tpa_be)) {
    d.drop = DropReason::arp_not_for_us;
    return d;
  }
  if (a.op == kArpRequest) {
    d.reply = true;
    if (!probe && policy.learn_from_requests && !table.on_request(a.spa_be, a.sha, now))
      d.drop = DropReason::arp_table_full;  // still answered; only the learning is dropped
    return d;
  }
  if (probe || !table.on_reply(a.spa_be, a.sha, now)) d.drop = DropReason::arp_unsolicited_reply;
  return d;
}

}  // namespace cw::dp::net
