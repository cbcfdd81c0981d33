// Prometheus text exposition (format 0.0.4) of a stats snapshot plus the supervisor's own
// counters. Written by hand rather than with prometheus-cpp: prometheus-cpp models metrics
// as live objects owned by the process that updates them, whereas ours are owned by another
// process and arrive as a whole snapshot (and restart from zero with the dataplane);
// mirroring them into a registry would mean delta bookkeeping per scrape. The format is
// small and fully specified, and tests/control/metrics_test.cc checks it (and runs promtool
// when it is installed).
#pragma once

#include <cstdint>
#include <string>

#include "control/segment.hh"

namespace cw::ctl {

// What corewirectl knows beyond the segment.
struct SupervisorMetrics {
  bool dataplane_up = false;
  uint64_t restarts = 0;  // dataplane restarts after a crash
  uint64_t scrapes = 0;   // /metrics requests served (including this one)
};

// snap may be null (no dataplane attached yet): only the supervisor's metrics are written.
std::string prometheus_text(const Snapshot* snap, const SupervisorMetrics& sup);

// Label value escaping per the text format: backslash, double quote and newline.
std::string escape_label(const std::string& v);

}  // namespace cw::ctl
