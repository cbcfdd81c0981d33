// corewirectl's subcommands (parsed in corewirectl.cc with CLI11). Each returns the process
// exit code: 0 ok, 1 the dataplane refused or is unreachable, 2 usage/config error.
#pragma once

#include <string>
#include <vector>

#include "control/control_config.hh"
#include "control/control_socket.hh"
#include "control/segment.hh"

namespace cw::ctl {

struct CliTarget {
  std::string socket, stats;
  bool json = false;
};

int cmd_status(const CliTarget& t);
int cmd_stats(const CliTarget& t, bool watch, int interval_ms, int count);
int cmd_top(const CliTarget& t, int interval_ms, int count);
int cmd_services(const CliTarget& t);
// stats reset: later `stats` and `services` count from now; clear: from the start again.
int cmd_stats_reset(const CliTarget& t, bool clear);
// `stats --json` and the admin /stats dump: every counter plus percentiles and burst size.
Json stats_json(const Snapshot& s);
// config show, log-level, service enable|disable, drain, shutdown, reload: one request.
int cmd_request(const CliTarget& t, const Json& request);
// rtp open|close|list (the control socket's `rtp` command): list as a table of sessions.
int cmd_rtp(const CliTarget& t, const Json& request);
// cluster init-ca / issue-cert (cluster_cli.cc): local files only, no dataplane.
int cmd_cluster_init_ca(const std::string& dir, const std::string& name);
int cmd_cluster_issue_cert(const std::string& ca_dir, const std::string& name,
                           const std::string& out_dir);

struct RunOptions {
  std::string config;                   // corewire.toml
  std::string corewire;                 // dataplane executable ("" = find it)
  std::vector<std::string> extra_args;  // passed to corewire after "-c config"
  std::string run_dir;                  // overrides control.run_dir ("" = from config)
  int admin_port = -1;                  // overrides control.admin port (-1 = from config)
  uint32_t backoff_initial_ms = 100, backoff_max_ms = 10'000;
};
int cmd_run(const RunOptions& o);

// The paths a subcommand talks to: from -c config (or defaults), then --run-dir/--socket/
// --stats overrides.
Result<ControlConfig> resolve_target(const std::string& config, const std::string& run_dir);

}  // namespace cw::ctl
