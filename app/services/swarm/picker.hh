// Piece selection (BEP 3 practice): a random first piece, so a new peer soon has something
// to trade, then the rarest piece among those the peer has, ties broken from a random
// start so that peers of one swarm do not all fetch the same piece. Pure: no I/O, no
// allocation. O(pieces) per pick: it runs once per piece started, not per block.
#pragma once

#include <cstdint>
#include <span>

namespace cw::swarm {

inline constexpr uint32_t kNoPiece = UINT32_MAX;

struct PickIn {
  std::span<const uint8_t> peer;    // the peer's bitfield (BEP 3 order)
  std::span<const uint8_t> have;    // ours
  std::span<const uint8_t> busy;    // one byte per piece: nonzero while being downloaded
  std::span<const uint16_t> avail;  // one per piece: peers that have it
  uint32_t pieces = 0;
  bool random_first = false;  // we have no piece yet: any eligible piece, at random
  uint64_t random = 0;        // a fresh random number
};

// A piece the peer has and we neither have nor download, or kNoPiece.
uint32_t pick_piece(const PickIn& in);

}  // namespace cw::swarm
