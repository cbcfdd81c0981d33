// The kv `stats` lines.
#include "app/services/kv/stats.hh"

#include <algorithm>
#include <cstdio>

#include "app/services/kv/protocol.hh"

namespace cw::kv {

// Room for a line, keeping what END needs: a full buffer still ends in END.
std::span<char> StatsWriter::room() const {
  constexpr size_t kEnd = 5;  // "END\r\n"
  return out_.size() < len_ + kEnd ? std::span<char>{}
                                   : out_.subspan(len_, out_.size() - len_ - kEnd);
}
void StatsWriter::stat(std::string_view name, uint64_t v) {
  len_ += proto::encode_stat(room(), name, v);
}
void StatsWriter::text(std::string_view name, std::string_view v) {
  len_ += proto::encode_stat(room(), name, v);
}
size_t StatsWriter::end() {
  len_ += proto::encode(out_.subspan(len_), proto::Reply::end);
  return len_;
}

void store_stats_sum(StatsWriter& w, const Partitions& p) {
  for (uint32_t i = 0; i < kStoreCounterCount; ++i) {
    uint64_t sum = 0;
    for (size_t k = 0; k < p.size(); ++k)
      if (const Partition* part = p.at(unsigned(k)); part && part->store)
        sum += (part->store->stats().*kStoreFields[i]).get();
    w.stat(kKvCounters[i].name, sum);
  }
}

namespace {

// Sum of one per-class counter over every partition (all have the same classes).
uint64_t class_sum(const Partitions& p, size_t cls, dp::Counter StoreStats::Class::*field) {
  uint64_t sum = 0;
  for (size_t k = 0; k < p.size(); ++k)
    if (const Partition* part = p.at(unsigned(k)); part && part->store)
      sum += (part->store->stats().classes[cls].*field).get();
  return sum;
}

size_t class_count(const Partitions& p) {
  const Partition* first = p.size() ? p.at(0) : nullptr;
  return first && first->store ? size_t(first->store->stats().class_count.get()) : 0;
}

// "<prefix><cls>:<name>": memcached numbers its classes from 1.
void class_stat(StatsWriter& w, std::string_view prefix, size_t cls, std::string_view name,
                uint64_t v) {
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%.*s%zu:%.*s", int(prefix.size()), prefix.data(),
                              cls + 1, int(name.size()), name.data());
  w.stat({buf, size_t(n)}, v);
}

}  // namespace

void store_slabs_sum(StatsWriter& w, const Partitions& p, uint64_t item_size_max) {
  uint64_t active = 0;
  for (size_t c = 0; c < class_count(p); ++c) {
    const uint64_t pages = class_sum(p, c, &StoreStats::Class::pages);
    if (pages == 0) continue;
    ++active;
    const uint64_t size = p.at(0)->store->stats().classes[c].chunk_size.get();
    const uint64_t per_page = size ? item_size_max / size : 0;
    const uint64_t used = class_sum(p, c, &StoreStats::Class::items);
    class_stat(w, "", c, "chunk_size", size);
    class_stat(w, "", c, "chunks_per_page", per_page);
    class_stat(w, "", c, "total_pages", pages);
    class_stat(w, "", c, "total_chunks", pages * per_page);
    class_stat(w, "", c, "used_chunks", used);
    class_stat(w, "", c, "free_chunks", pages * per_page - std::min(used, pages * per_page));
  }
  uint64_t used = 0, total = 0;
  for (size_t k = 0; k < p.size(); ++k)
    if (const Partition* part = p.at(unsigned(k)); part && part->store) {
      used += part->store->stats().used_pages.get();
      total += part->store->stats().total_pages.get();
    }
  w.stat("active_slabs", active);
  w.stat("pages_used", used);
  w.stat("pages_total", total);
  w.stat("total_malloced", used * item_size_max);
}

void store_items_sum(StatsWriter& w, const Partitions& p) {
  for (size_t c = 0; c < class_count(p); ++c) {
    const uint64_t items = class_sum(p, c, &StoreStats::Class::items);
    const uint64_t evicted = class_sum(p, c, &StoreStats::Class::evicted);
    const uint64_t oom = class_sum(p, c, &StoreStats::Class::outofmemory);
    if (items == 0 && evicted == 0 && oom == 0) continue;
    class_stat(w, "items:", c, "number", items);
    class_stat(w, "items:", c, "evicted", evicted);
    class_stat(w, "items:", c, "outofmemory", oom);
  }
}

}  // namespace cw::kv
