// The kv service's counters: the names it declares (memcached's where they mean the same,
// reaching the stats segment and /metrics) and the `stats` command's lines. The first
// kStoreCounterCount are copies of one partition's StoreStats; the rest are the service's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "app/runtime/counters.hh"
#include "app/services/kv/config.hh"
#include "app/services/kv/store/store.hh"

namespace cw::kv {

using rt::CounterKind;

// Indexes into kKvCounters (ctx.counters of a kv service).
enum KvCounter : uint32_t {
  // Copied from the partition's StoreStats (kStoreFields, same order).
  kCmdGet,
  kCmdSet,
  kCmdTouch,
  kGetHits,
  kGetMisses,
  kGetExpired,
  kGetFlushed,
  kTouchHits,
  kTouchMisses,
  kDeleteHits,
  kDeleteMisses,
  kIncrHits,
  kIncrMisses,
  kDecrHits,
  kDecrMisses,
  kCasHits,
  kCasMisses,
  kCasBadval,
  kCurrItems,
  kTotalItems,
  kBytes,
  kEvictions,
  kEvictedUnfetched,
  kExpiredUnfetched,
  kReclaimed,
  kOutOfMemory,
  kLimitMaxbytes,
  kStoreCounterCount,
  // The service's own.
  kCmdFlush = kStoreCounterCount,
  kCurrConnections,
  kTotalConnections,
  kForwarded,
  kServedForOthers,
  kForwardFailed,
  kPipelinePauses,
  kSlowReaderPauses,
  kClientErrors,
  kProtocolCloses,
  kUdpRequests,
  kUdpMalformed,
  kUdpCapped,
  kUdpRefused,
  kUdpSpanning,
  kTcpPeersFull,
  kWarmLoaded,
  kWarmSaved,
  kClusterForwarded,
  kClusterServed,
  kClusterTimeouts,
  kClusterUnavailable,
  kClusterBad,
  kClusterTooLarge,
  kKvCounterCount
};

// clang-format off
inline constexpr rt::CounterDecl kKvCounters[] = {
    {"cmd_get", "Get requests (get, gets, mg; per key)"},
    {"cmd_set", "Storage requests (set, add, replace, append, prepend, cas, ms)"},
    {"cmd_touch", "Touch requests (touch, gat, gats)"},
    {"get_hits", "Keys found by a get"},
    {"get_misses", "Keys not found by a get"},
    {"get_expired", "Gets that found their item expired"},
    {"get_flushed", "Gets that found their item flushed"},
    {"touch_hits", "Touches that found their key"},
    {"touch_misses", "Touches that did not find their key"},
    {"delete_hits", "Deletes that found their key"},
    {"delete_misses", "Deletes that did not find their key"},
    {"incr_hits", "incr that found their key"},
    {"incr_misses", "incr that did not find their key"},
    {"decr_hits", "decr that found their key"},
    {"decr_misses", "decr that did not find their key"},
    {"cas_hits", "cas that stored"},
    {"cas_misses", "cas on a missing key"},
    {"cas_badval", "cas with a stale unique"},
    {"curr_items", "Items stored now", CounterKind::gauge},
    {"total_items", "Items ever stored"},
    {"bytes", "Bytes of the items stored now (header, key, value)", CounterKind::gauge},
    {"evictions", "Live items evicted to make room"},
    {"evicted_unfetched", "Evicted items never read"},
    {"expired_unfetched", "Expired items never read"},
    {"reclaimed", "Chunks reused from expired items"},
    {"outofmemory", "Stores refused: no memory in the item's slab class"},
    {"limit_maxbytes", "Item memory of this partition, bytes", CounterKind::gauge},
    {"cmd_flush", "flush_all commands"},
    {"curr_connections", "Open connections", CounterKind::gauge},
    {"total_connections", "Connections accepted"},
    {"forwarded", "Requests sent to the key's owner worker"},
    {"served_for_others", "Requests run here for another worker"},
    {"forward_failed", "Forwarded requests lost or answered SERVER_ERROR (no buffer, no mail)"},
    {"pipeline_pauses", "Connections paused: pipeline depth, mail or buffers exhausted"},
    {"slow_reader_pauses", "Connections paused: output not read by the peer"},
    {"client_errors", "ERROR and CLIENT_ERROR replies"},
    {"protocol_closes", "Connections closed for bad input (long line, HTTP)"},
    {"udp_requests", "UDP request datagrams served"},
    {"udp_malformed", "UDP datagrams dropped: bad frame, partial request, no buffer"},
    {"udp_capped", "UDP replies dropped: over the amplification cap"},
    {"udp_refused", "UDP datagrams dropped: UDP not enabled on this address"},
    {"udp_spanning", "UDP requests refused: keys owned by several workers"},
    {"tcp_peers_full", "TCP peers not remembered as UDP-proven: their table slots were busy"},
    {"warm_loaded", "Items loaded from the warm restart files", CounterKind::gauge},
    {"warm_saved", "Items saved to the warm restart file", CounterKind::gauge},
    {"cluster_forwarded", "Requests sent to the key's owner node (cluster)"},
    {"cluster_served", "Requests run here for another node (cluster)"},
    {"cluster_timeouts", "Requests to another node not answered in time: SERVER_ERROR or a miss"},
    {"cluster_unavailable", "Requests whose owner node went away first: SERVER_ERROR or a miss"},
    {"cluster_bad", "Malformed requests from other nodes: answered SERVER_ERROR"},
    {"cluster_too_large", "Requests or replies above a peer frame: SERVER_ERROR"},
};
// clang-format on
static_assert(std::size(kKvCounters) == kKvCounterCount);

// The StoreStats field behind each of the first kStoreCounterCount counters.
inline constexpr dp::Counter StoreStats::*kStoreFields[] = {
    &StoreStats::cmd_get,     &StoreStats::cmd_set,           &StoreStats::cmd_touch,
    &StoreStats::get_hits,    &StoreStats::get_misses,        &StoreStats::get_expired,
    &StoreStats::get_flushed, &StoreStats::touch_hits,        &StoreStats::touch_misses,
    &StoreStats::delete_hits, &StoreStats::delete_misses,     &StoreStats::incr_hits,
    &StoreStats::incr_misses, &StoreStats::decr_hits,         &StoreStats::decr_misses,
    &StoreStats::cas_hits,    &StoreStats::cas_misses,        &StoreStats::cas_badval,
    &StoreStats::curr_items,  &StoreStats::total_items,       &StoreStats::bytes,
    &StoreStats::evictions,   &StoreStats::evicted_unfetched, &StoreStats::expired_unfetched,
    &StoreStats::reclaimed,   &StoreStats::outofmemory,       &StoreStats::limit_maxbytes,
};
static_assert(std::size(kStoreFields) == kStoreCounterCount);

// Owner worker: the partition's store counters into its declared counters.
inline void copy_store_counters(const StoreStats& s, rt::Counter* out) {
  for (uint32_t i = 0; i < kStoreCounterCount; ++i) out[i].set((s.*kStoreFields[i]).get());
}

// "STAT <name> <value>\r\n" lines and the final "END\r\n" into a fixed buffer; lines that
// do not fit are left out (the buffer is sized for every line the service writes).
class StatsWriter {
 public:
  explicit StatsWriter(std::span<char> out) : out_(out) {}
  void stat(std::string_view name, uint64_t v);
  void text(std::string_view name, std::string_view v);
  size_t end();  // bytes written, END included

 private:
  std::span<char> room() const;
  std::span<char> out_;
  size_t len_ = 0;
};

// Every partition's store counters, summed (other workers' are read with relaxed loads).
void store_stats_sum(StatsWriter& w, const Partitions& p);
// `stats slabs`: per slab class with pages (chunk size, pages, chunks used and free), then
// the pages of item_size_max bytes in use and in total; summed over the partitions.
void store_slabs_sum(StatsWriter& w, const Partitions& p, uint64_t item_size_max);
// `stats items`: per slab class that holds or lost items: number, evicted, outofmemory.
void store_items_sum(StatsWriter& w, const Partitions& p);

}  // namespace cw::kv
