// Mail kinds the control thread sends to services (rt::Mail::kind, Mail::from =
// rt::kControlSender). A service that supports them implements on_mail; others ignore them.
// The worker's own mail (stop accepting) is in app/runtime/worker.hh (rt::kWorkerMail).
#pragma once

#include <cstdint>

namespace cw::ctl {

inline constexpr uint16_t kMailServiceDisable = 0xC001;  // refuse new requests (counted)
inline constexpr uint16_t kMailServiceEnable = 0xC002;   // serve again
inline constexpr uint16_t kMailDrain = 0xC003;  // finish in-flight work, accept nothing new

}  // namespace cw::ctl
