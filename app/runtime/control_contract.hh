// The contract between the runtime (app/) and management (control/): all that control/ may
// know of the runtime, and all that the runtime and the services know of control/. control/
// includes nothing else from app/, and app/runtime and app/services include nothing from
// control/ (tests/control/include_rules_test.py checks both), so neither side's headers can
// pull in the other's and the include graph has no cycle.
//
//   counters   rt::WorkerStats, rt::ServiceStats, rt::LatencyHist (stats.hh): the fixed
//              counters the publisher copies into the stats segment; rt::CounterDecl and
//              rt::ServiceCounterBlocks (counters.hh): the counters services declare by name.
//   mail       rt::Mail (mail.hh) and the kinds below, which the control thread sends
//              through Mailboxes::control_ring with Mail::from = rt::kControlSender.
//   commands   rt::ServiceCommand: a control-socket request for one service and its reply.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "app/runtime/counters.hh"
#include "app/runtime/mail.hh"
#include "app/runtime/stats.hh"

namespace cw::rt {

// Mail addressed to the worker itself rather than to one of its services (Mail::service).
inline constexpr uint16_t kWorkerMail = 0xFFFE;
inline constexpr uint16_t kMailStopAccepting = 1;  // drain: io.stop_accepting(), once

// Mail kinds for services. A service that supports them implements on_mail (the echo
// services through svc::ServiceSwitch); others ignore them.
inline constexpr uint16_t kMailServiceDisable = 0xC001;  // refuse new requests (counted)
inline constexpr uint16_t kMailServiceEnable = 0xC002;   // serve again
inline constexpr uint16_t kMailDrain = 0xC003;  // finish in-flight work, accept nothing new
// A command for the service (Mail::p is a ServiceCommand); only services that take commands
// are sent one (the rtp service: `corewirectl rtp ...`).
inline constexpr uint16_t kMailServiceCommand = 0xC004;

// A control-socket request to one service instance, answered by a worker. The control thread
// allocates it, fills `request`, posts it (kMailServiceCommand) and waits for `done`; it frees
// the block only once `done` is set, also when it stopped waiting (so a late worker never
// writes freed memory). The worker that answers (the service may forward the mail to the
// worker that owns what the command is about) writes `reply`, a JSON object's text, then
// sets `done` (release) and never touches the block again. Commands are rare and off the
// packet path: handling one may allocate.
struct ServiceCommand {
  std::string request;  // service-defined text
  std::string reply;    // a JSON object, e.g. {"ok":false,"error":"..."}
  std::atomic<bool> done{false};
};

}  // namespace cw::rt
