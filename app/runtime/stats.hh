// Runtime counters, one cache-aligned block per worker and per (worker, service). The
// worker is the only writer; anything else (the management process, tests) reads them with
// relaxed loads while the worker runs. These are plain structs so they can later live in the
// shared-memory stats segment (control/) unchanged.
#pragma once

#include <cstdint>

#include "dataplane/io.hh"

namespace cw::rt {

using dp::Counter;

struct alignas(64) WorkerStats {
  Counter loops;            // iterations of the poll loop
  Counter bursts;           // iterations that received at least one item
  Counter items;            // items received
  Counter unknown_socket;   // item on a socket no service owns (dropped)
  Counter stream_oversize;  // partial frame above the service's max_frame (conn closed)
  Counter stream_no_buffer; // no tail buffer left for a partial frame (conn closed)
  Counter mail_in, mail_dropped;
  Counter busy_ns;          // time spent handling bursts (ns)
};

struct alignas(64) ServiceStats {
  Counter requests;   // well-formed requests handled
  Counter responses;  // replies queued
  Counter errors;     // protocol error replies sent
  Counter malformed;  // input dropped as malformed (no reply possible or allowed)
  Counter dropped;    // replies not sent: no tx buffer, connection gone
};

}  // namespace cw::rt
