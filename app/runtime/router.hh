// Key ownership. Every key has exactly one owner worker; state for the key lives there only
// and other workers reach it by mail (Ctx::post_local_or_remote: the owner runs it in
// place, anyone else mails the owner).
//
// How keys map: hash the key bytes with hash_key() (64 bits, every bit mixed), then
// owner_of(h, n) = floor(hi * n / 2^32) with hi the top 32 bits of h. That takes the owner
// from the high bits of the hash, uniform over the n workers for a uniform hash (bias at
// most n / 2^32), with one multiply and no division;
// tables inside a worker index by the low bits, so the two choices stay independent. The
// worker count is fixed while the runtime runs, so the map is too; a restart with another
// count moves keys (per-worker state does not survive a restart anyway).
#pragma once

#include <cstdint>
#include <span>

namespace cw::rt {

inline constexpr unsigned owner_of(uint64_t key_hash, unsigned workers) {
  return unsigned(((key_hash >> 32) * workers) >> 32);
}

// FNV-1a over the bytes, then the murmur3 finalizer so high and low bits both depend on
// every input byte (FNV alone leaves the high bits weak for short keys).
inline constexpr uint64_t hash_key(std::span<const uint8_t> key) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : key) h = (h ^ b) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace cw::rt
