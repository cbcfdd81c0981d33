// The store's datapath (get/store/remove/arith/flush/expiry) and its setup. Save/load are in
// store_file.cc.
#include "app/services/kv/store/store.hh"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "app/services/kv/store/item.hh"

namespace cw::kv {

uint64_t key_hash(std::string_view key) {
  return XXH3_64bits(key.data(), key.size());
}

namespace {

// memcached's strtoull rules for incr/decr: leading blanks, digits, then the end or a
// blank. A sign or anything else, or more than 2^64-1, is not a number.
bool parse_u64(std::string_view s, uint64_t* out) {
  std::size_t i = 0;
  auto blank = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (i < s.size() && blank(s[i])) ++i;
  if (i < s.size() && s[i] == '+') ++i;
  const std::size_t first = i;
  uint64_t v = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  if (i == first) return false;
  if (i < s.size() && !blank(s[i])) return false;
  *out = v;
  return true;
}

std::size_t format_u64(uint64_t v, char* buf) {  // buf >= 20 bytes
  char tmp[20];
  std::size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (std::size_t i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  return n;
}

constexpr std::size_t kMinChunk = 48;

}  // namespace

// ---- setup ----

Result<Store> Store::create(const StoreConfig& cfg) {
  static_assert(sizeof(Item) == kItemHeaderBytes);  // here: Item is private
  const std::size_t page = cfg.item_size_max & ~std::size_t{7};
  if (cfg.item_size_max < 1024 || cfg.item_size_max > (std::size_t{1} << 30))
    return make_error("kv store: item_size_max must be 1 KiB .. 1 GiB");
  if (cfg.memory_limit < page)
    return make_error("kv store: memory_limit must hold one item_size_max page");
  if (cfg.memory_limit > kMaxArenaBytes)
    return make_error("kv store: memory_limit above 32 GiB per core");
  if (!(cfg.growth_factor > 1.0 && cfg.growth_factor <= 4.0))
    return make_error("kv store: growth_factor must be in (1, 4]");
  if (cfg.hash_buckets != 0 && !std::has_single_bit(cfg.hash_buckets))
    return make_error("kv store: hash_buckets must be a power of two");

  Store s;
  s.page_size_ = page;
  s.pages_total_ = static_cast<uint32_t>(cfg.memory_limit / page);
  s.arena_bytes_ = std::size_t{s.pages_total_} * page;
  // Anonymous pages read as zero until written: uncut chunks look free to expire_some().
  void* m = mmap(nullptr, s.arena_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED)
    return make_error("kv store: mmap of " + std::to_string(s.arena_bytes_) +
                      " bytes: " + std::strerror(errno));
  s.arena_ = static_cast<std::byte*>(m);
  // Random access over GiBs: 2 MiB pages save a TLB miss per lookup where THP allows.
  madvise(m, s.arena_bytes_, MADV_HUGEPAGE);
  s.page_class_.assign(s.pages_total_, 0);

  std::size_t size = kMinChunk;
  while (static_cast<double>(size) < static_cast<double>(page) / cfg.growth_factor) {
    s.classes_.push_back(SlabClass{.size = static_cast<uint32_t>(size)});
    const auto next = static_cast<std::size_t>(static_cast<double>(size) * cfg.growth_factor);
    size = std::max(size + 8, (next + 7) & ~std::size_t{7});
  }
  s.classes_.push_back(SlabClass{.size = static_cast<uint32_t>(page)});
  static_assert(StoreStats::kMaxClasses >= 255);
  if (s.classes_.size() > 255) return make_error("kv store: growth_factor gives > 255 classes");

  std::size_t buckets = cfg.hash_buckets;
  if (buckets == 0) buckets = std::bit_ceil(std::max<std::size_t>(cfg.memory_limit / 192, 1024));
  buckets = std::max<std::size_t>(buckets, 2);
  s.buckets_.assign(buckets, 0);
  s.bucket_mask_ = buckets - 1;
  s.bucket_shift_ = 64 - std::countr_zero(buckets);
  s.bump_interval_ = cfg.lru_bump_interval_s;
  s.stats_ = std::make_unique<StoreStats>();
  s.stats_->limit_maxbytes.set(cfg.memory_limit);
  s.stats_->total_pages.set(s.pages_total_);
  s.stats_->class_count.set(s.classes_.size());
  for (std::size_t i = 0; i < s.classes_.size(); ++i)
    s.stats_->classes[i].chunk_size.set(s.classes_[i].size);
  return Result<Store>(std::move(s));
}

Store::Store(Store&& o) noexcept
    : arena_(std::exchange(o.arena_, nullptr)),
      arena_bytes_(o.arena_bytes_),
      page_size_(o.page_size_),
      pages_total_(o.pages_total_),
      pages_used_(o.pages_used_),
      page_class_(std::move(o.page_class_)),
      classes_(std::move(o.classes_)),
      buckets_(std::move(o.buckets_)),
      bucket_mask_(o.bucket_mask_),
      bucket_shift_(o.bucket_shift_),
      bump_interval_(o.bump_interval_),
      cas_counter_(o.cas_counter_),
      flush_cas_(o.flush_cas_),
      flush_at_(o.flush_at_),
      flush_pending_(o.flush_pending_),
      expire_cursor_(o.expire_cursor_),
      stats_(std::move(o.stats_)) {}

Store::~Store() {
  if (arena_ != nullptr) munmap(arena_, arena_bytes_);
}

// ---- items, index, LRU ----

Store::Item* Store::at(uint32_t ref) const {
  return ref == 0 ? nullptr : reinterpret_cast<Item*>(arena_ + (std::size_t{ref} - 1) * 8);
}

uint32_t Store::ref_of(const Item* it) const {
  return static_cast<uint32_t>((reinterpret_cast<const std::byte*>(it) - arena_) / 8 + 1);
}

uint32_t Store::bucket_of(std::string_view key) const {
  return static_cast<uint32_t>(bucket_shift_ == 64 ? 0 : key_hash(key) >> bucket_shift_);
}

uint32_t Store::rel_or_abs(int64_t exptime, uint32_t now) const {
  if (exptime == 0) return 0;
  if (exptime < 0) return 1;  // already expired
  if (exptime > kMaxRelativeExptime) {
    if (exptime <= static_cast<int64_t>(now)) return 1;
    return static_cast<uint32_t>(std::min<int64_t>(exptime, std::numeric_limits<uint32_t>::max()));
  }
  return static_cast<uint32_t>(
      std::min<int64_t>(int64_t{now} + exptime, std::numeric_limits<uint32_t>::max()));
}

// Exact once settle_flush(now) ran (every datapath call starts with it); save() is const and
// may see a pending flush that is due: then every item is older than it.
bool Store::is_flushed(const Item* it, uint32_t now) const {
  return it->cas < flush_cas_ || (flush_pending_ && flush_at_ <= now);
}

bool Store::is_live(const Item* it, uint32_t now) const {
  return !(it->exptime != 0 && it->exptime <= now) && !is_flushed(it, now);
}

Outcome Store::check_key(std::string_view key) const {
  return key.empty() || key.size() > kMaxKeyBytes ? Outcome::bad_key : Outcome::hit;
}

Store::Item* Store::find(std::string_view key, uint32_t now, Outcome* why_missing) {
  *why_missing = Outcome::miss;
  for (Item* it = at(buckets_[bucket_of(key)]); it != nullptr; it = at(it->hash_next)) {
    if (it->key_len != key.size() || std::memcmp(it->key(), key.data(), key.size()) != 0) continue;
    if (is_flushed(it, now)) {
      *why_missing = Outcome::flushed;
    } else if (it->exptime != 0 && it->exptime <= now) {
      *why_missing = Outcome::expired;
      if ((it->bits & Item::kFetched) == 0) stats_->expired_unfetched.add();
    } else {
      return it;
    }
    stats_->reclaimed.add();
    unlink(it);
    return nullptr;
  }
  return nullptr;
}

void Store::lru_push_head(Item* it) {
  SlabClass& c = classes_[it->cls];
  const uint32_t ref = ref_of(it);
  it->lru_prev = 0;
  it->lru_next = c.lru_head;
  if (c.lru_head != 0) at(c.lru_head)->lru_prev = ref;
  c.lru_head = ref;
  if (c.lru_tail == 0) c.lru_tail = ref;
}

void Store::lru_remove(Item* it) {
  SlabClass& c = classes_[it->cls];
  if (it->lru_prev != 0)
    at(it->lru_prev)->lru_next = it->lru_next;
  else
    c.lru_head = it->lru_next;
  if (it->lru_next != 0)
    at(it->lru_next)->lru_prev = it->lru_prev;
  else
    c.lru_tail = it->lru_prev;
  it->lru_prev = it->lru_next = 0;
}

void Store::bump(Item* it, uint32_t now) {
  // Rate-limited as memcached's: moving an item touches two neighbours' cache lines.
  if (int64_t{now} - it->atime < bump_interval_) return;
  if (classes_[it->cls].lru_head != ref_of(it)) {
    lru_remove(it);
    lru_push_head(it);
  }
  it->atime = now;
}

void Store::link(Item* it) {
  uint32_t& head = buckets_[bucket_of(it->key_view())];
  it->hash_next = head;
  head = ref_of(it);
  lru_push_head(it);
  it->bits |= Item::kLinked;
  stats_->curr_items.add();
  stats_->classes[it->cls].items.add();
  stats_->total_items.add();
  stats_->bytes.add(it->total());
}

void Store::unlink(Item* it) {
  const uint32_t ref = ref_of(it);
  uint32_t* p = &buckets_[bucket_of(it->key_view())];
  while (*p != ref) p = &at(*p)->hash_next;  // a linked item is on its chain
  *p = it->hash_next;
  lru_remove(it);
  stats_->curr_items.set(stats_->curr_items.get() - 1);
  dp::Counter& in_class = stats_->classes[it->cls].items;
  in_class.set(in_class.get() - 1);
  stats_->bytes.set(stats_->bytes.get() - it->total());
  SlabClass& c = classes_[it->cls];
  it->bits = 0;
  it->hash_next = 0;
  it->lru_next = c.free_head;
  c.free_head = ref;
}

int Store::class_for(std::size_t total) const {
  if (total > page_size_) return -1;
  auto i = std::lower_bound(classes_.begin(), classes_.end(), total,
                            [](const SlabClass& c, std::size_t t) { return c.size < t; });
  return static_cast<int>(i - classes_.begin());
}

std::size_t Store::chunk_bytes(std::size_t key_len, std::size_t value_len) const {
  const int cls = class_for(sizeof(Item) + key_len + value_len);
  return cls < 0 ? 0 : classes_[static_cast<std::size_t>(cls)].size;
}

Store::Item* Store::alloc(std::size_t key_len, std::size_t value_len, const Item* protect,
                          uint32_t now) {
  const int ci = class_for(sizeof(Item) + key_len + value_len);
  if (ci < 0) return nullptr;
  SlabClass& c = classes_[static_cast<std::size_t>(ci)];
  std::byte* chunk = nullptr;
  if (c.free_head == 0 && c.carve == c.carve_end && pages_used_ < pages_total_) {
    std::byte* page = arena_ + std::size_t{pages_used_} * page_size_;
    page_class_[pages_used_++] = static_cast<uint8_t>(ci);
    stats_->used_pages.set(pages_used_);
    stats_->classes[std::size_t(ci)].pages.add();
    c.carve = page;
    c.carve_end = page + (page_size_ / c.size) * c.size;
  }
  if (c.free_head != 0) {
    Item* it = at(c.free_head);
    c.free_head = it->lru_next;
    chunk = reinterpret_cast<std::byte*>(it);
  } else if (c.carve != c.carve_end) {
    chunk = c.carve;
    c.carve += c.size;
  } else {
    Item* victim = at(c.lru_tail);
    if (victim != nullptr && victim == protect) victim = at(victim->lru_prev);
    if (victim == nullptr) {
      stats_->outofmemory.add();
      stats_->classes[std::size_t(ci)].outofmemory.add();
      return nullptr;
    }
    if (!is_live(victim, now)) {
      stats_->reclaimed.add();
      if ((victim->bits & Item::kFetched) == 0 && !is_flushed(victim, now))
        stats_->expired_unfetched.add();
    } else {
      stats_->evictions.add();
      stats_->classes[std::size_t(ci)].evicted.add();
      if ((victim->bits & Item::kFetched) == 0) stats_->evicted_unfetched.add();
    }
    unlink(victim);
    c.free_head = victim->lru_next;
    chunk = reinterpret_cast<std::byte*>(victim);
  }
  Item* it = reinterpret_cast<Item*>(chunk);
  *it = Item{};
  it->cls = static_cast<uint8_t>(ci);
  it->key_len = static_cast<uint8_t>(key_len);
  it->value_len = static_cast<uint32_t>(value_len);
  return it;
}

Store::Item* Store::make(std::string_view key, std::size_t value_len, uint32_t flags,
                         uint32_t exptime, const Item* protect, uint32_t now, Outcome* fail) {
  if (sizeof(Item) + key.size() + value_len > page_size_) {
    *fail = Outcome::too_large;
    return nullptr;
  }
  Item* it = alloc(key.size(), value_len, protect, now);
  if (it == nullptr) {
    *fail = Outcome::no_memory;
    return nullptr;
  }
  std::memcpy(it->key(), key.data(), key.size());
  it->flags = flags;
  it->exptime = exptime;
  it->atime = now;
  return it;
}

ItemView Store::view(const Item* it) const {
  ItemView v;
  v.key = it->key_view();
  v.value = std::string_view(it->key() + it->key_len, it->value_len);
  v.cas = it->cas;
  v.flags = it->flags;
  v.exptime = it->exptime;
  v.last_access = it->atime;
  v.fetched = (it->bits & Item::kFetched) != 0;
  v.stale = (it->bits & Item::kStale) != 0;
  v.token_sent = (it->bits & Item::kTokenSent) != 0;
  return v;
}

// ---- operations ----

GetResult Store::get(std::string_view key, uint32_t now, const GetOptions& opt) {
  settle_flush(now);
  GetResult r;
  if (check_key(key) != Outcome::hit) {
    r.outcome = Outcome::bad_key;
    return r;
  }
  StoreStats& st = *stats_;
  (opt.counts_as_touch ? st.cmd_touch : st.cmd_get).add();
  Outcome why;
  Item* it = find(key, now, &why);
  if (it == nullptr) {
    if (why == Outcome::expired) st.get_expired.add();
    if (why == Outcome::flushed) st.get_flushed.add();
    r.outcome = why;
    Outcome fail;
    if (opt.vivify) it = make(key, 0, 0, rel_or_abs(opt.vivify_exptime, now), nullptr, now, &fail);
    // memcached counts a vivified miss as a hit
    (opt.counts_as_touch ? (it ? st.touch_hits : st.touch_misses)
                         : (it ? st.get_hits : st.get_misses))
        .add();
    if (it == nullptr) return r;
    it->cas = take_cas(opt.new_cas);
    it->bits |= Item::kTokenSent;
    link(it);
    r.outcome = Outcome::hit;
    r.item = view(it);
    r.item.token_sent = false;
    r.item.win = true;
    return r;
  }
  (opt.counts_as_touch ? st.touch_hits : st.get_hits).add();
  if (opt.touch) it->exptime = rel_or_abs(opt.exptime, now);
  r.outcome = Outcome::hit;
  r.item = view(it);
  // memcached 1.6 stale-while-revalidate: one caller gets the win token (W) per stale or
  // soon-to-expire item; the others see Z until it is stored again.
  const bool sent = (it->bits & Item::kTokenSent) != 0;
  bool win = false;
  if (it->bits & Item::kStale) win = !sent;
  if (opt.recache && !sent && it->exptime != 0 &&
      static_cast<int64_t>(it->exptime) - now < opt.recache_ttl)
    win = true;
  if (win) it->bits |= Item::kTokenSent;
  r.item.win = win;
  it->bits |= Item::kFetched;
  bump(it, now);
  return r;
}

Outcome Store::touch(std::string_view key, int64_t exptime, uint32_t now) {
  settle_flush(now);
  if (check_key(key) != Outcome::hit) return Outcome::bad_key;
  stats_->cmd_touch.add();
  Outcome why;
  Item* it = find(key, now, &why);
  if (it == nullptr) {
    stats_->touch_misses.add();
    return Outcome::not_found;
  }
  stats_->touch_hits.add();
  it->exptime = rel_or_abs(exptime, now);
  it->bits |= Item::kFetched;
  bump(it, now);
  return Outcome::hit;
}

StoreResult Store::store(const StoreRequest& req, uint32_t now) {
  settle_flush(now);
  StoreResult r;
  if (check_key(req.key) != Outcome::hit) {
    r.outcome = Outcome::bad_key;
    return r;
  }
  StoreStats& st = *stats_;
  st.cmd_set.add();
  StoreMode mode = req.mode;
  if (req.cas != 0 && (mode == StoreMode::set || mode == StoreMode::replace)) mode = StoreMode::cas;
  uint32_t exptime = rel_or_abs(req.exptime, now);
  Outcome why;
  Item* old = find(req.key, now, &why);
  bool mark_stale = false;
  switch (mode) {
    case StoreMode::set:
      break;
    case StoreMode::add:
      if (old != nullptr) {
        bump(old, now);  // memcached refreshes the existing item's LRU position
        r.outcome = Outcome::not_stored;
        return r;
      }
      break;
    case StoreMode::replace:
      if (old == nullptr) {
        r.outcome = Outcome::not_stored;
        return r;
      }
      break;
    case StoreMode::append:
    case StoreMode::prepend:
      if (old == nullptr) {
        if (!req.vivify) {
          r.outcome = Outcome::not_stored;
          return r;
        }
        exptime = rel_or_abs(req.vivify_exptime, now);
      } else if (req.cas != 0 && req.cas != old->cas) {
        r.outcome = Outcome::exists;
        return r;
      }
      break;
    case StoreMode::cas:
      if (old == nullptr) {
        st.cas_misses.add();
        r.outcome = Outcome::not_found;
        return r;
      }
      if (req.cas == old->cas) {
        st.cas_hits.add();
      } else if (req.invalidate && req.cas < old->cas) {
        // ms I: an older writer's value is kept, but stays stale with the old TTL.
        st.cas_hits.add();
        mark_stale = true;
        exptime = old->exptime;
      } else {
        st.cas_badval.add();
        r.outcome = Outcome::exists;
        return r;
      }
      break;
  }

  const bool concat = old != nullptr && (mode == StoreMode::append || mode == StoreMode::prepend);
  Item* it;
  Outcome fail = Outcome::no_memory;
  if (concat) {
    it =
        make(req.key, old->value_len + req.value.size(), old->flags, old->exptime, old, now, &fail);
    if (it != nullptr) {
      char* dst = it->value();
      const std::string_view ov(old->value(), old->value_len);
      if (mode == StoreMode::append) {
        std::memcpy(dst, ov.data(), ov.size());
        std::memcpy(dst + ov.size(), req.value.data(), req.value.size());
      } else {
        std::memcpy(dst, req.value.data(), req.value.size());
        std::memcpy(dst + req.value.size(), ov.data(), ov.size());
      }
    }
  } else {
    it = make(req.key, req.value.size(), req.flags, exptime, old, now, &fail);
    if (it != nullptr) std::memcpy(it->value(), req.value.data(), req.value.size());
  }
  if (it == nullptr) {
    // As memcached: a failed set does not leave the previous value readable.
    if (mode == StoreMode::set && old != nullptr) unlink(old);
    r.outcome = fail;
    return r;
  }
  if (old != nullptr) {
    if (mark_stale) it->bits |= Item::kStale | (old->bits & Item::kTokenSent);
    unlink(old);
  }
  it->cas = take_cas(req.new_cas);
  link(it);
  r.outcome = Outcome::stored;
  r.cas = it->cas;
  return r;
}

Outcome Store::remove(const DeleteRequest& req, uint32_t now) {
  settle_flush(now);
  if (check_key(req.key) != Outcome::hit) return Outcome::bad_key;
  Outcome why;
  Item* it = find(req.key, now, &why);
  if (it == nullptr) {
    stats_->delete_misses.add();
    return Outcome::not_found;
  }
  if (req.cas != 0 && req.cas != it->cas) {
    stats_->delete_misses.add();  // as memcached's md
    return Outcome::exists;
  }
  if (req.invalidate) {  // md I: readers now see it stale and one of them wins the recache
    it->bits = static_cast<uint8_t>((it->bits | Item::kStale) & ~Item::kTokenSent);
    if (req.update_ttl) it->exptime = rel_or_abs(req.exptime, now);
    it->cas = take_cas(req.new_cas);
    return Outcome::deleted;
  }
  stats_->delete_hits.add();  // md I is not counted, as in memcached
  unlink(it);
  return Outcome::deleted;
}

ArithResult Store::arith(const ArithRequest& req, uint32_t now) {
  settle_flush(now);
  ArithResult r;
  if (check_key(req.key) != Outcome::hit) {
    r.outcome = Outcome::bad_key;
    return r;
  }
  StoreStats& st = *stats_;
  char digits[20];
  Outcome why;
  Item* old = find(req.key, now, &why);
  if (old == nullptr) {
    if (!req.vivify) {
      (req.incr ? st.incr_misses : st.decr_misses).add();
      return r;  // not_found
    }
    const std::size_t n = format_u64(req.initial, digits);
    Outcome fail;
    Item* it = make(req.key, n, 0, rel_or_abs(req.vivify_exptime, now), nullptr, now, &fail);
    if (it == nullptr) {
      r.outcome = fail;
      return r;
    }
    std::memcpy(it->value(), digits, n);
    it->cas = take_cas(req.new_cas);
    link(it);
    r = {Outcome::hit, req.initial, it->cas, it->exptime};
    return r;
  }
  if (req.cas != 0 && req.cas != old->cas) {
    r.outcome = Outcome::exists;
    return r;
  }
  uint64_t v;
  if (!parse_u64(std::string_view(old->value(), old->value_len), &v)) {
    r.outcome = Outcome::non_numeric;
    return r;
  }
  (req.incr ? st.incr_hits : st.decr_hits).add();
  v = req.incr ? v + req.delta : (req.delta > v ? 0 : v - req.delta);
  const std::size_t n = format_u64(v, digits);
  if (req.update_ttl) old->exptime = rel_or_abs(req.exptime, now);
  Item* it = old;
  if (n <= old->value_len) {
    // In place, as memcached: a shorter number is padded with spaces, the length kept.
    std::memcpy(it->value(), digits, n);
    std::memset(it->value() + n, ' ', old->value_len - n);
    it->bits |= Item::kFetched;
    bump(it, now);
  } else {
    Outcome fail;
    it = make(req.key, n, old->flags, old->exptime, old, now, &fail);
    if (it == nullptr) {
      r.outcome = fail;
      return r;
    }
    std::memcpy(it->value(), digits, n);
    unlink(old);
    link(it);
  }
  it->cas = take_cas(req.new_cas);
  r = {Outcome::hit, v, it->cas, it->exptime};
  return r;
}

void Store::flush_all(int64_t delay, uint32_t now) {
  // memcached keeps oldest_live = flush time - 1 and compares last-access times, so an item
  // stored in that last second vanishes too; a cas cut taken when the flush comes keeps it.
  const uint32_t t = delay > 0 ? rel_or_abs(delay, now) : now;
  flush_at_ = t == 0 ? 0 : t - 1;
  flush_pending_ = true;
  settle_flush(now);
}

uint32_t Store::expire_some(uint32_t now, uint32_t budget) {
  settle_flush(now);
  const uint64_t used = uint64_t{pages_used_} * page_size_;
  if (used == 0) return 0;
  uint32_t reclaimed = 0;
  for (; budget > 0; --budget) {
    if (expire_cursor_ >= used) expire_cursor_ = 0;
    const uint64_t page = expire_cursor_ / page_size_;
    const uint64_t off = expire_cursor_ % page_size_;
    const uint32_t size = classes_[page_class_[page]].size;
    if (off + size > page_size_) {
      expire_cursor_ = (page + 1) * page_size_;
      continue;
    }
    Item* it = reinterpret_cast<Item*>(arena_ + expire_cursor_);
    expire_cursor_ += size;
    if ((it->bits & Item::kLinked) && !is_live(it, now)) {
      if (!is_flushed(it, now) && (it->bits & Item::kFetched) == 0) stats_->expired_unfetched.add();
      stats_->reclaimed.add();
      unlink(it);
      ++reclaimed;
    }
  }
  return reclaimed;
}

// ---- setup-time helpers ----

void Store::clear() {
  for (SlabClass& c : classes_)
    while (c.lru_head != 0) unlink(at(c.lru_head));
}

Result<void> Store::verify() const {
  uint64_t items = 0, bytes = 0;
  for (std::size_t ci = 0; ci < classes_.size(); ++ci) {
    const SlabClass& c = classes_[ci];
    uint32_t prev = 0;
    for (uint32_t ref = c.lru_head; ref != 0; ref = at(ref)->lru_next) {
      const Item* it = at(ref);
      if (it->lru_prev != prev) return make_error("lru prev link broken");
      if (it->cls != ci || !(it->bits & Item::kLinked)) return make_error("lru item state");
      const std::size_t page = (reinterpret_cast<const std::byte*>(it) - arena_) / page_size_;
      if (page >= pages_used_ || page_class_[page] != ci) return make_error("item page class");
      if (it->total() > c.size) return make_error("item larger than its chunk");
      bool found = false;
      for (const Item* h = at(buckets_[bucket_of(it->key_view())]); h; h = at(h->hash_next))
        found |= h == it;
      if (!found) return make_error("linked item not in the index");
      ++items;
      bytes += it->total();
      prev = ref;
      if (items > stats_->curr_items.get()) return make_error("more items than counted");
    }
    if (c.lru_tail != prev) return make_error("lru tail wrong");
    uint64_t in_class = 0, pages = 0;
    for (uint32_t ref = c.lru_head; ref != 0; ref = at(ref)->lru_next) ++in_class;
    for (uint32_t pg = 0; pg < pages_used_; ++pg) pages += page_class_[pg] == ci;
    if (in_class != stats_->classes[ci].items.get() || pages != stats_->classes[ci].pages.get())
      return make_error("class counters disagree with the lists");
    uint64_t free_n = 0;
    for (uint32_t ref = c.free_head; ref != 0; ref = at(ref)->lru_next) {
      if (at(ref)->bits != 0) return make_error("free chunk marked in use");
      if (++free_n > arena_bytes_ / kMinChunk) return make_error("free list loops");
    }
  }
  uint64_t indexed = 0;
  for (uint32_t b : buckets_)
    for (const Item* h = at(b); h != nullptr; h = at(h->hash_next))
      if (++indexed > items) return make_error("index holds more than the lru lists");
  if (items != stats_->curr_items.get() || indexed != items)
    return make_error("curr_items disagrees with the lists");
  if (bytes != stats_->bytes.get()) return make_error("bytes disagrees with the items");
  return {};
}

std::vector<std::string> Store::lru_keys_for_test(std::size_t key_len,
                                                  std::size_t value_len) const {
  std::vector<std::string> keys;
  const int ci = class_for(sizeof(Item) + key_len + value_len);
  if (ci < 0) return keys;
  for (uint32_t ref = classes_[static_cast<std::size_t>(ci)].lru_head; ref != 0;
       ref = at(ref)->lru_next)
    keys.emplace_back(at(ref)->key_view());
  return keys;
}

}  // namespace cw::kv
