// Piece selection (picker.hh).
#include "app/services/swarm/picker.hh"

#include "app/services/swarm/storage.hh"

namespace cw::swarm {

uint32_t pick_piece(const PickIn& in) {
  const uint32_t n = in.pieces;
  if (n == 0 || in.peer.size() * 8 < n || in.have.size() * 8 < n || in.busy.size() < n ||
      in.avail.size() < n)
    return kNoPiece;
  const uint32_t start = uint32_t(in.random % n);
  uint32_t best = kNoPiece;
  uint32_t best_avail = UINT32_MAX;
  for (uint32_t k = 0; k < n; ++k) {
    uint32_t i = start + k;
    if (i >= n) i -= n;
    if (!bit(in.peer.data(), i) || bit(in.have.data(), i) || in.busy[i]) continue;
    if (in.random_first) return i;
    if (in.avail[i] < best_avail) {
      best = i;
      best_avail = in.avail[i];
      if (best_avail <= 1) break;  // only this peer has it: none is rarer
    }
  }
  return best;
}

}  // namespace cw::swarm
