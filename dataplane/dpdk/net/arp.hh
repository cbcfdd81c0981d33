// ARP: a bounded neighbour table with timeouts, and the policy for received ARP packets.
//
// Policy (the table never trusts what it did not ask for):
//   * Requests for one of our addresses are answered.
//   * A reply is learned only while we have a request outstanding for its sender IP
//     (we sent one and are still waiting, or are refreshing a stale entry). Unsolicited
//     replies, gratuitous ARP and requests for other hosts never create or change entries.
//   * Optionally (learn_from_requests) the sender of a request addressed to us is learned:
//     we are about to answer it anyway, and it saves the reverse lookup (Linux does this).
//   * Entries are reachable for kArpReachableNs; for kArpStaleNs more they still resolve
//     while a refresh request goes out; then they are forgotten. A request is retried every
//     kArpRetryNs, kArpMaxTries times; then the neighbour is "failed" for kArpFailedHoldNs
//     (sends to it are dropped at once instead of queueing and re-asking).
//
// One table per worker, touched only by its owner thread. Set-associative (4 ways per
// bucket), so lookup costs one hash and at most 4 compares and never allocates.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/dpdk/net/frame.hh"
#include "dataplane/dpdk/net/wire.hh"

namespace cw::dp::net {

inline constexpr int64_t kArpReachableNs = 60'000'000'000;
inline constexpr int64_t kArpStaleNs = 30'000'000'000;
inline constexpr int64_t kArpRetryNs = 1'000'000'000;
inline constexpr uint8_t kArpMaxTries = 3;
inline constexpr int64_t kArpFailedHoldNs = 5'000'000'000;
inline constexpr uint32_t kArpWays = 4;
inline constexpr uint32_t kArpDefaultEntries = 256;

enum class ArpLookup : uint8_t {
  hit,           // mac is valid
  hit_refresh,   // mac is valid (stale); caller sends a request now
  miss_request,  // unknown; caller sends a request now and queues or drops the packet
  miss_pending,  // a request is already outstanding; queue or drop
  failed,        // the neighbour did not answer recently: drop
  table_full,    // no slot: drop
};

struct ArpLookupResult {
  ArpLookup status;
  Mac mac;
  // hit only: the answer stays `hit` with this MAC until this time, unless generation()
  // changes first (a caller may cache it until then).
  int64_t fresh_until_ns = 0;
};

enum class ArpEvent : uint8_t { retransmit, failed };

class ArpTable {
 public:
  // entries: rounded up to a power of two >= kArpWays.
  explicit ArpTable(uint32_t entries = kArpDefaultEntries);

  // Resolution for our own sends.
  ArpLookupResult lookup(uint32_t ip_be, int64_t now_ns);
  // A reply from ip: learned only if we asked (returns false: unsolicited, not learned).
  bool on_reply(uint32_t ip_be, const Mac& mac, int64_t now_ns);
  // The sender of a request addressed to us. False when there is no free slot (live
  // entries are never evicted for this).
  bool on_request(uint32_t ip_be, const Mac& mac, int64_t now_ns);
  // The link just came up: requests sent while it was down were lost, so every pending
  // one is due for retransmission at the next run_timers (the try is not given back).
  void retry_pending_now(int64_t now_ns) {
    for (uint32_t i = 0; i <= mask_; ++i)
      if (e_[i].pending && e_[i].retry_ns > now_ns) e_[i].retry_ns = now_ns;
  }
  // Timers: calls f(ip_be, ArpEvent) for every request to retransmit or give up on, and
  // forgets expired entries. Call every few hundred ms.
  template <class F>
  void run_timers(int64_t now_ns, F&& f);

  uint32_t size() const;  // entries in use (for tests and stats)
  // Changes whenever an entry is learned, changed, claimed or forgotten: a cached `hit`
  // is valid only while this stays the same.
  uint64_t generation() const { return gen_; }
  uint32_t capacity() const { return mask_ + 1; }

 private:
  enum class State : uint8_t { free, incomplete, reachable, failed };
  struct Entry {
    uint32_t ip_be = 0;
    State state = State::free;
    bool pending = false;  // a request is outstanding: a reply may be learned
    uint8_t tries = 0;
    Mac mac{};
    int64_t expires_ns = 0;  // reachable: until then; failed: hold until then
    int64_t retry_ns = 0;    // pending: next retransmit or give-up
  };
  Entry* find(uint32_t ip_be);
  // A slot in ip's bucket: free first, then expired/failed-and-over, then (if evict) the
  // oldest non-pending reachable entry.
  Entry* claim(uint32_t ip_be, int64_t now_ns, bool evict);
  Entry* bucket(uint32_t ip_be);
  void start_request(Entry& e, int64_t now_ns);

  std::unique_ptr<Entry[]> e_;
  uint32_t mask_;
  uint64_t gen_ = 0;
};

template <class F>
void ArpTable::run_timers(int64_t now, F&& f) {
  for (uint32_t i = 0; i <= mask_; ++i) {
    Entry& e = e_[i];
    if (e.state == State::free) continue;
    if (e.pending && now >= e.retry_ns) {
      if (e.tries >= kArpMaxTries) {
        e.pending = false;
        if (e.state == State::incomplete || now >= e.expires_ns + kArpStaleNs) {
          e.state = State::failed;
          e.expires_ns = now + kArpFailedHoldNs;
          ++gen_;
          f(e.ip_be, ArpEvent::failed);
        }
      } else {
        ++e.tries;
        e.retry_ns = now + kArpRetryNs;
        f(e.ip_be, ArpEvent::retransmit);
      }
      continue;
    }
    if ((e.state == State::reachable && !e.pending && now >= e.expires_ns + kArpStaleNs) ||
        (e.state == State::failed && now >= e.expires_ns)) {
      e = Entry{};
      ++gen_;
    }
  }
}

// What to do with a received ARP packet (after parse_arp and the Ethernet checks).
struct ArpDecision {
  bool reply = false;  // answer with our MAC for arp.tpa_be to arp.sha
  // Count when not `count`. With reply == false the packet is done; with reply == true the
  // request is still answered and only its learning was dropped (table full).
  DropReason drop = DropReason::count;
};

struct ArpPolicy {
  bool learn_from_requests = true;
};

// Applies the policy above: validates the sender, answers requests for our addresses,
// learns only solicited replies (and, by policy, requesters).
ArpDecision arp_input(const ArpPacket& a, const Mac& eth_src, const Interface& ifc, ArpTable& table,
                      const ArpPolicy& policy, int64_t now_ns);

}  // namespace cw::dp::net
