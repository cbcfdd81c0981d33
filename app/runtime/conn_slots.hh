// A service's per-connection state: one T per connection slot of its worker, sized at setup
// (ServiceCtx::max_conns) and indexed by dp::conn_slot(c), so opening a connection allocates
// nothing. Each slot remembers the ConnId that owns it: a stale handle (a closed connection
// whose slot was reused) finds nothing. Owner worker only.
//
// Use: open(c) in on_open (or right after connect(), which returns c), find(c) in the
// handlers, close(c) in on_closed. open starts the state as T{}; close resets it to T{} and
// the slot forgets c, so a stale c finds nothing even before the slot is reused.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "dataplane/io.hh"

namespace cw::rt {

template <class T>
class ConnSlots {
 public:
  ConnSlots() = default;
  explicit ConnSlots(uint32_t max_conns)
      : n_(max_conns), state_(max_conns), owner_(max_conns, dp::kNoConn) {
    static_assert(std::is_default_constructible_v<T> && std::is_move_assignable_v<T>);
  }

  // Claims c's slot with a fresh T{}; nullptr when c's slot is beyond max_conns (a
  // backend bug, or a ConnSlots sized smaller than the backend's table).
  T* open(dp::ConnId c) {
    const uint32_t s = dp::conn_slot(c);
    if (c == dp::kNoConn || s >= n_) return nullptr;
    state_[s] = T{};
    owner_[s] = c;
    return &state_[s];
  }
  // c's state, or nullptr when c is not open here (never opened, closed, or stale).
  T* find(dp::ConnId c) {
    const uint32_t s = dp::conn_slot(c);
    if (s >= n_ || owner_[s] != c) return nullptr;
    return &state_[s];
  }
  // Resets c's state to T{}; nothing when c does not own its slot (already closed).
  void close(dp::ConnId c) {
    const uint32_t s = dp::conn_slot(c);
    if (s >= n_ || owner_[s] != c) return;
    state_[s] = T{};
    owner_[s] = dp::kNoConn;
  }
  uint32_t capacity() const { return n_; }
  // f(ConnId, const T&) for every open connection, in slot order (setup or rare paths:
  // it visits every slot).
  template <class F>
  void for_each(F&& f) const {
    for (uint32_t s = 0; s < n_; ++s)
      if (owner_[s] != dp::kNoConn) f(owner_[s], state_[s]);
  }

 private:
  uint32_t n_ = 0;
  std::vector<T> state_;           // sized once; never grows
  std::vector<dp::ConnId> owner_;  // ConnId owning each slot, kNoConn when free
};

}  // namespace cw::rt
