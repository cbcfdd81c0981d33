// The kv service's state: one Store per worker core (a shared-nothing partition; the router
// sends each key to its owner). No I/O, no wire format, no clock: every call takes `now`
// (unix seconds) so expiry is the caller's time. Owner-core only (not thread-safe); the
// counters in stats() may be read from other threads.
//
// Memory: one arena of memory_limit bytes is mapped at create() and cut into pages of
// item_size_max bytes; a page is given to a slab class on first need and keeps it. An item
// (40-byte header, key, value) lives in one chunk of the smallest class that fits it. Each
// class has its own LRU list; when a class has no free chunk and no page is left, its LRU
// tail is evicted. The hash index is a fixed power-of-two bucket array of 32-bit item refs,
// chained through the items (sized at create(), never grown). So after create() no call
// allocates. docs/kv-store.md has the layout and the bytes per item.
//
// Semantics are memcached 1.6's (exptime rules, flush_all with its delay, CAS, incr/decr,
// append/prepend keeping the old flags and exptime, meta stale/win/vivify).
//
// Lifetime of returned views: the key/value spans in an ItemView point into the arena.
// They stay valid across further get() (without vivify) and touch() calls with the same
// `now` (a multi-get may collect them), and until any other call (store, remove, arith,
// flush_all, expire_some, load, a vivifying get), which may reuse the chunk.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/io.hh"
#include "dataplane/result.hh"

namespace cw::kv {

inline constexpr std::size_t kMaxKeyBytes = 250;
inline constexpr int64_t kMaxRelativeExptime = 60 * 60 * 24 * 30;  // larger: absolute unix s
inline constexpr std::size_t kDefaultItemSizeMax = std::size_t{1} << 20;
inline constexpr std::size_t kItemHeaderBytes = 40;
inline constexpr std::size_t kMaxArenaBytes = std::size_t{32} << 30;  // 32-bit refs of 8 B

struct StoreConfig {
  std::size_t memory_limit = std::size_t{64} << 20;  // item memory, bytes (memcached -m)
  std::size_t item_size_max = kDefaultItemSizeMax;   // header+key+value, bytes; page size (-I)
  double growth_factor = 1.25;                       // chunk size ratio of classes (-f)
  std::size_t hash_buckets = 0;  // power of two; 0: memory_limit / 192 rounded up
  // An access moves an item to its LRU head and sets its last-access time only if the last
  // one is at least this old (memcached: 60 s); 0: every access (exact LRU).
  uint32_t lru_bump_interval_s = 60;
};

enum class Outcome : uint8_t {
  hit,          // get/touch/arith found the item
  miss,         // no such key
  expired,      // there was one, past its exptime (a miss; reclaimed now)
  flushed,      // there was one, invalidated by flush_all (a miss; reclaimed now)
  stored,       // STORED
  not_stored,   // NOT_STORED (add on existing, replace/append/prepend on missing)
  exists,       // EXISTS (cas mismatch)
  not_found,    // NOT_FOUND (cas/delete/arith/touch on missing)
  deleted,      // DELETED
  too_large,    // SERVER_ERROR object too large for cache
  no_memory,    // SERVER_ERROR out of memory storing object (class has nothing to evict)
  non_numeric,  // CLIENT_ERROR cannot increment or decrement non-numeric value
  bad_key,      // empty or longer than kMaxKeyBytes (the codec refuses these first)
};

// true for hit/stored/deleted: the outcomes a reply reports as success.
inline bool succeeded(Outcome o) {
  return o == Outcome::hit || o == Outcome::stored || o == Outcome::deleted;
}

struct ItemView {
  std::string_view key, value;  // into the arena: see the lifetime note above
  uint64_t cas = 0;
  uint32_t flags = 0;        // client flags
  uint32_t exptime = 0;      // unix s; 0 never
  uint32_t last_access = 0;  // unix s of the previous access or store (mg l: now - this)
  bool fetched = false;      // fetched before this access (mg h)
  bool stale = false;        // marked by md I / ms I (mg X)
  bool win = false;          // this caller must recache (mg W)
  bool token_sent = false;   // another caller already won (mg Z)
};

struct GetResult {
  Outcome outcome = Outcome::miss;  // hit, miss, expired, flushed, bad_key
  ItemView item;                    // when hit
};

// get/gets/gat/gats/mg. Plain get leaves everything default.
struct GetOptions {
  bool touch = false;  // gat, mg T: set exptime
  int64_t exptime = 0;
  bool vivify = false;  // mg N: on miss create an empty item with this exptime, caller wins
  int64_t vivify_exptime = 0;
  bool recache = false;  // mg R: win if the remaining TTL is below recache_ttl seconds
  int64_t recache_ttl = 0;
  bool counts_as_touch = false;  // gat: counted as cmd_touch/touch_hits, not get_hits
  uint64_t new_cas = 0;          // mg E: a vivified item's CAS (0: the next one)
};

enum class StoreMode : uint8_t { set, add, replace, append, prepend, cas };

struct StoreRequest {
  StoreMode mode = StoreMode::set;
  std::string_view key, value;
  uint32_t flags = 0;
  int64_t exptime = 0;
  uint64_t cas = 0;         // mode cas: compare; set/replace with cas != 0 become cas (ms C);
                            // append/prepend with cas != 0 compare first
  bool invalidate = false;  // ms I: a cas lower than the item's stores it marked stale
  bool vivify = false;      // ms N in append/prepend mode: on miss store as add
  int64_t vivify_exptime = 0;
  uint64_t new_cas = 0;  // ms E: the stored item's CAS (0: the next one)
};

struct StoreResult {
  Outcome outcome = Outcome::not_stored;
  uint64_t cas = 0;  // of the stored item (ms c)
};

struct DeleteRequest {
  std::string_view key;
  uint64_t cas = 0;         // md C: compare first (exists on mismatch)
  bool invalidate = false;  // md I: keep the item, mark it stale, new cas
  bool update_ttl = false;  // md T (with I)
  int64_t exptime = 0;
  uint64_t new_cas = 0;  // md E (with I): the item's new CAS (0: the next one)
};

struct ArithRequest {
  std::string_view key;
  bool incr = true;  // incr wraps at 2^64; decr floors at 0
  uint64_t delta = 1;
  uint64_t cas = 0;     // ma C
  bool vivify = false;  // ma N: on miss create with `initial` (ma J), no delta applied
  int64_t vivify_exptime = 0;
  uint64_t initial = 0;
  bool update_ttl = false;  // ma T
  int64_t exptime = 0;
  uint64_t new_cas = 0;  // ma E: the new value's CAS (0: the next one)
};

struct ArithResult {
  Outcome outcome = Outcome::not_found;  // hit, not_found, exists, non_numeric, no_memory
  uint64_t value = 0;
  uint64_t cas = 0;
  uint32_t exptime = 0;
};

// Names as memcached's `stats`. Written by the owner core only; any thread may read.
struct StoreStats {
  dp::Counter curr_items, total_items, bytes;  // bytes: header+key+value of live items
  dp::Counter cmd_get, get_hits, get_misses, get_expired, get_flushed;
  dp::Counter cmd_set, cmd_touch, touch_hits, touch_misses;
  dp::Counter delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses;
  dp::Counter cas_hits, cas_misses, cas_badval;
  dp::Counter evictions, evicted_unfetched, expired_unfetched, reclaimed, outofmemory;
  dp::Counter limit_maxbytes, total_pages, used_pages;  // pages: of item_size_max bytes
  // Per slab class (`stats slabs`, `stats items`), index = class; class_count are in use.
  struct Class {
    dp::Counter chunk_size, pages, items, evicted, outofmemory;
  };
  static constexpr size_t kMaxClasses = 256;  // create() refuses more
  dp::Counter class_count;
  std::array<Class, kMaxClasses> classes;
};

struct SaveSummary {
  uint64_t items = 0, bytes = 0;  // bytes written to the file
};
struct LoadSummary {
  uint64_t items = 0;            // linked again
  uint64_t skipped_expired = 0;  // expired by the load's `now`
  uint64_t dropped = 0;          // too large or no memory in this store's config
  uint64_t not_kept = 0;         // refused by LoadOptions::keep (owned by another partition)
};

// How load() takes a file. Default: into an empty store, every item.
struct LoadOptions {
  // Items whose key this refuses are skipped (a partition re-homing the files of a run with
  // another worker count keeps the keys it owns). Empty: keep all.
  std::function<bool(std::string_view key)> keep;
  // Load into a store that already holds items (a further file). A key already present is
  // a corrupt file, as a duplicate within one file is.
  bool merge = false;
};

// 64-bit hash of a key (XXH3). The store indexes buckets by its high bits, so a router
// should pick the core from the low bits (hash % cores) and the two stay independent.
uint64_t key_hash(std::string_view key);

class Store {
 public:
  static Result<Store> create(const StoreConfig& cfg);
  Store(Store&& o) noexcept;
  Store& operator=(Store&&) = delete;
  Store(const Store&) = delete;
  ~Store();

  // Starts loading the key's bucket into cache. A burst of requests runs faster when the
  // service prefetches every key first, then executes them (the bucket misses overlap).
  void prefetch(std::string_view key) const { __builtin_prefetch(&buckets_[bucket_of(key)]); }

  GetResult get(std::string_view key, uint32_t now, const GetOptions& opt = {});
  Outcome touch(std::string_view key, int64_t exptime, uint32_t now);  // touched = hit
  StoreResult store(const StoreRequest& req, uint32_t now);
  Outcome remove(const DeleteRequest& req, uint32_t now);  // deleted, not_found, exists
  ArithResult arith(const ArithRequest& req, uint32_t now);
  // flush_all [delay]: every item stored before the flush takes effect is gone; items
  // stored after it stay. delay <= 0: now; else an exptime (relative or absolute) and, as
  // in memcached, it takes effect one second before that time.
  void flush_all(int64_t delay, uint32_t now);
  // Background expiry: visits up to `budget` chunks from a cursor that wraps around the
  // used pages and reclaims expired or flushed items. Returns the number reclaimed.
  uint32_t expire_some(uint32_t now, uint32_t budget);

  // Warm restart (setup time: these allocate and do I/O). save() writes every live item,
  // LRU order kept; load() needs an empty store and refuses a foreign, truncated or
  // corrupt file with an error (the store is left empty). File format: docs/kv-store.md.
  Result<SaveSummary> save(int fd, uint32_t now) const;
  Result<SaveSummary> save_file(const std::string& path, uint32_t now) const;  // tmp+rename
  // On any fault the store is emptied (also of what it held before a merge).
  Result<LoadSummary> load(int fd, uint32_t now, const LoadOptions& opt = {});
  Result<LoadSummary> load_file(const std::string& path, uint32_t now, const LoadOptions& opt = {});

  const StoreStats& stats() const { return *stats_; }
  // Walks every structure and checks it agrees with the others (tests, fuzzing).
  Result<void> verify() const;
  // Chunk size an item of this key and value length takes (0: too large). For docs/tests.
  std::size_t chunk_bytes(std::size_t key_len, std::size_t value_len) const;
  std::size_t hash_buckets() const { return bucket_mask_ + 1; }
  std::size_t item_size_max() const { return page_size_; }

  // Keys in one slab class from most to least recently used (tests of LRU order).
  std::vector<std::string> lru_keys_for_test(std::size_t key_len, std::size_t value_len) const;

 private:
  struct Item;
  struct SlabClass {
    uint32_t size = 0;  // chunk bytes, multiple of 8
    uint32_t free_head = 0;
    uint32_t lru_head = 0, lru_tail = 0;  // head: most recent
    std::byte* carve = nullptr;           // next uncut chunk of the newest page
    std::byte* carve_end = nullptr;
  };

  Store() = default;
  Item* at(uint32_t ref) const;
  uint32_t ref_of(const Item* it) const;
  uint32_t bucket_of(std::string_view key) const;
  Item* find(std::string_view key, uint32_t now, Outcome* why_missing);
  bool is_live(const Item* it, uint32_t now) const;
  bool is_flushed(const Item* it, uint32_t now) const;
  void settle_flush(uint32_t now) {
    if (flush_pending_ && flush_at_ <= now) {
      flush_cas_ = cas_counter_;  // every item stored so far is older than the flush
      flush_pending_ = false;
    }
  }
  uint32_t rel_or_abs(int64_t exptime, uint32_t now) const;
  int class_for(std::size_t total) const;
  Item* alloc(std::size_t key_len, std::size_t value_len, const Item* protect, uint32_t now);
  void link(Item* it);
  void unlink(Item* it);  // from hash and LRU, back to its free list
  void lru_push_head(Item* it);
  void lru_remove(Item* it);
  void bump(Item* it, uint32_t now);
  void clear();
  Result<LoadSummary> load_into(int fd, uint32_t now, const LoadOptions& opt);
  Item* make(std::string_view key, std::size_t value_len, uint32_t flags, uint32_t exptime,
             const Item* protect, uint32_t now, Outcome* fail);
  Outcome check_key(std::string_view key) const;
  uint64_t next_cas() { return cas_counter_++; }
  // The CAS a changed item gets: the client's (meta E) or the next one. The counter moves
  // past a client's value so that a later flush_all still covers the item; values from
  // kExplicitCasCeiling up are kept as given without moving it (the counter must not wrap),
  // so such an item outlives flush_all until it is stored again. A client value below the
  // last flush's cut reads as flushed, as in memcached (item_is_flushed compares CAS too).
  static constexpr uint64_t kExplicitCasCeiling = uint64_t{1} << 62;
  uint64_t take_cas(uint64_t explicit_cas) {
    if (explicit_cas == 0) return next_cas();
    if (explicit_cas < kExplicitCasCeiling && explicit_cas >= cas_counter_)
      cas_counter_ = explicit_cas + 1;
    return explicit_cas;
  }
  ItemView view(const Item* it) const;

  std::byte* arena_ = nullptr;
  std::size_t arena_bytes_ = 0;
  std::size_t page_size_ = 0;
  uint32_t pages_total_ = 0, pages_used_ = 0;
  std::vector<uint8_t> page_class_;  // per page in use
  std::vector<SlabClass> classes_;
  std::vector<uint32_t> buckets_;
  uint64_t bucket_mask_ = 0;
  int bucket_shift_ = 0;
  uint32_t bump_interval_ = 0;
  uint64_t cas_counter_ = 1;
  // flush_all: items with a cas below flush_cas_ are gone. A delayed flush waits in
  // flush_at_ (unix s) until an operation at or after that time sets flush_cas_.
  uint64_t flush_cas_ = 0;
  uint32_t flush_at_ = 0;
  bool flush_pending_ = false;
  uint64_t expire_cursor_ = 0;         // byte offset into the used pages
  std::unique_ptr<StoreStats> stats_;  // heap: Counters are atomics and Store moves
};

}  // namespace cw::kv
