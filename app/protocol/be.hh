// Big-endian loads and stores at unaligned addresses. Both wire protocols corewire speaks
// use network byte order; memcpy + byte swap compiles to one mov + bswap (or movbe).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace cw::proto {

template <class T>
inline T load_be(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little && sizeof(T) > 1) {
    if constexpr (sizeof(T) == 2) v = T(__builtin_bswap16(v));
    if constexpr (sizeof(T) == 4) v = T(__builtin_bswap32(v));
    if constexpr (sizeof(T) == 8) v = T(__builtin_bswap64(v));
  }
  return v;
}

template <class T>
inline void store_be(uint8_t* p, T v) {
  if constexpr (std::endian::native == std::endian::little && sizeof(T) > 1) {
    if constexpr (sizeof(T) == 2) v = T(__builtin_bswap16(v));
    if constexpr (sizeof(T) == 4) v = T(__builtin_bswap32(v));
    if constexpr (sizeof(T) == 8) v = T(__builtin_bswap64(v));
  }
  std::memcpy(p, &v, sizeof v);
}

}  // namespace cw::proto
