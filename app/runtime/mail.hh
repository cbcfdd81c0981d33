// The mail message: a fixed-size message between workers, or from the control thread to a
// worker, carried by the mailboxes (mailbox.hh). Its own header because both the runtime and
// control/ (through control_contract.hh) use it.
#pragma once

#include <cstdint>

namespace cw::rt {

// Ownership of p: memory belongs to the worker that allocated it and is freed (returned to
// its pool) on that worker only. Mail that carries p hands the receiver what the kind says;
// the runtime's one rule is for shared buffers (shared_buf.hh): a Mail whose p is a
// SharedBuf carries one reference, which the receiver releases exactly once. A post that
// fails (Post::failed) hands over nothing: the sender still owns p.
struct Mail {
  uint16_t service = 0;  // index of the target service in the worker's service table
  uint16_t kind = 0;     // meaning defined by the service
  uint32_t from = 0;     // sending worker (kControlSender for the control thread)
  uint64_t a = 0, b = 0;
  void* p = nullptr;  // see above
};
inline constexpr uint32_t kControlSender = 0xFFFF;

}  // namespace cw::rt
