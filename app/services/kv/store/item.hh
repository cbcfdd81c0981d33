// The item header as it lies in a slab chunk: 40 bytes, then the key, then the value (no
// terminator, no "\r\n": the codec frames values). Private to the store's sources.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "app/services/kv/store/store.hh"

namespace cw::kv {

struct Store::Item {
  static constexpr uint8_t kLinked = 1;     // in the index and an LRU list (else free)
  static constexpr uint8_t kFetched = 2;    // read since stored (mg h, *_unfetched stats)
  static constexpr uint8_t kStale = 4;      // md I / ms I (mg X)
  static constexpr uint8_t kTokenSent = 8;  // a win token went out (mg Z to the others)

  uint32_t lru_prev = 0, lru_next = 0;  // refs; lru_next links the free list when free
  uint32_t hash_next = 0;
  uint32_t exptime = 0;  // unix s, 0 never
  uint32_t atime = 0;    // unix s of the last store or access (flush_all compares it)
  uint32_t flags = 0;    // client flags
  uint64_t cas = 0;
  uint32_t value_len = 0;
  uint8_t key_len = 0;
  uint8_t cls = 0;  // slab class
  uint8_t bits = 0;
  uint8_t pad = 0;

  char* key() { return reinterpret_cast<char*>(this + 1); }
  const char* key() const { return reinterpret_cast<const char*>(this + 1); }
  char* value() { return key() + key_len; }
  const char* value() const { return key() + key_len; }
  std::string_view key_view() const { return {key(), key_len}; }
  std::size_t total() const { return kItemHeaderBytes + key_len + value_len; }
};

}  // namespace cw::kv
