// The relay's forwarding table (docs/rtp.md, "Relay sessions at run time"): a packet's
// source (address, port) -> where it goes, for every side of every run-time relay session.
// Open addressing with linear probing and backward-shift deletion in one array allocated at
// construction: a lookup is a hash and a probe of (usually) one cache line, insert and erase
// never allocate, and the load stays at most 1/2. Pure and header-only: the kernel-socket
// reference relay (bench/reference/rtp_relay.cc) uses the same table, so the benchmark
// compares forwarding, not lookups.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cw::rtp {

class RelayTable {
 public:
  struct Entry {
    uint64_t key = 0;   // the source's endpoint key (command.hh endpoint_key); 0: empty
    uint64_t dest = 0;  // the destination's endpoint key
    uint32_t slot = 0;  // the session it belongs to (the owner's slot)
  };

  // Room for max_entries entries (at least 1), in 2 x that rounded up to a power of two.
  explicit RelayTable(size_t max_entries = 0) {
    size_t cap = 16;
    while (cap < 2 * max_entries) cap *= 2;
    slots_.resize(cap);
    max_ = max_entries;
    mask_ = cap - 1;
  }

  const Entry* find(uint64_t key) const {
    if (key == 0) return nullptr;
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == 0) return nullptr;  // load <= 1/2: an empty slot ends every probe
    }
  }

  // Inserts or replaces key's entry; false (nothing changed) for key 0 or a full table.
  bool insert(uint64_t key, uint64_t dest, uint32_t slot) {
    if (key == 0) return false;
    size_t i = home(key);
    for (; slots_[i].key != 0; i = (i + 1) & mask_)
      if (slots_[i].key == key) {
        slots_[i].dest = dest;
        slots_[i].slot = slot;
        return true;
      }
    if (size_ >= max_) return false;
    slots_[i] = {key, dest, slot};
    ++size_;
    return true;
  }

  // Removes key's entry; false when there is none. Backward shift: each later entry of the
  // probe run whose home is not between the hole and itself moves into the hole, so no
  // tombstones accumulate and lookups stay as short as after inserts alone.
  bool erase(uint64_t key) {
    if (key == 0) return false;
    size_t i = home(key);
    for (; slots_[i].key != key; i = (i + 1) & mask_)
      if (slots_[i].key == 0) return false;
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; slots_[j].key != 0; j = (j + 1) & mask_) {
      const size_t h = home(slots_[j].key);
      // j may move to hole when its home lies cyclically outside (hole, j].
      if (((j - h) & mask_) >= ((j - hole) & mask_)) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Entry{};
    --size_;
    return true;
  }

  size_t size() const { return size_; }
  size_t capacity() const { return max_; }

 private:
  size_t home(uint64_t key) const {
    const uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return size_t(h ^ h >> 32) & mask_;
  }

  std::vector<Entry> slots_;
  size_t max_ = 0, mask_ = 0, size_ = 0;
};

}  // namespace cw::rtp
