// The kv `stats` lines.
#include "app/services/kv/stats.hh"

#include "app/services/kv/protocol.hh"

namespace cw::kv {

void StatsWriter::stat(std::string_view name, uint64_t v) {
  len_ += proto::encode_stat(out_.subspan(len_), name, v);
}
void StatsWriter::text(std::string_view name, std::string_view v) {
  len_ += proto::encode_stat(out_.subspan(len_), name, v);
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

void store_pages_sum(StatsWriter& w, const Partitions& p, uint64_t item_size_max) {
  uint64_t used = 0, total = 0;
  for (size_t k = 0; k < p.size(); ++k)
    if (const Partition* part = p.at(unsigned(k)); part && part->store) {
      used += part->store->stats().used_pages.get();
      total += part->store->stats().total_pages.get();
    }
  w.stat("active_slabs", used);
  w.stat("total_slabs", total);
  w.stat("total_malloced", used * item_size_max);
}

}  // namespace cw::kv
