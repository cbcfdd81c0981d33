// corewirectl: runs and supervises the corewire dataplane, serves admin HTTP, and talks to a
// running dataplane through its control socket and stats segment. See docs/management.md.
#include <CLI/CLI.hpp>

#include <spdlog/spdlog.h>

#include "control/cli.hh"
#include "control/logging.hh"
#include "control/version.hh"

int main(int argc, char** argv) {
  using namespace cw::ctl;
  CLI::App app{"corewirectl: manage a corewire dataplane"};
  app.set_version_flag("--version", cw::version_line("corewirectl"));
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  std::string config, run_dir, socket, stats;
  bool json = false;
  app.add_option("-c,--config", config,
                 "corewire.toml (its [control] section names the paths; default: built-in)");
  app.add_option("--run-dir", run_dir, "override control.run_dir");
  app.add_option("--socket", socket, "override the control socket path");
  app.add_option("--stats", stats, "override the stats segment path");
  app.add_flag("--json", json, "machine-readable output");

  RunOptions ro;
  auto* run = app.add_subcommand(
      "run", "validate the config, start and supervise corewire, serve admin HTTP");
  run->add_option("--corewire", ro.corewire, "dataplane executable (default: next to corewirectl)");
  run->add_option("--admin-port", ro.admin_port, "admin HTTP port on 127.0.0.1 (0 = off)");
  run->add_option("--backoff-ms", ro.backoff_initial_ms, "first restart delay after a crash");
  run->add_option("--backoff-max-ms", ro.backoff_max_ms, "longest restart delay");
  run->add_option("args", ro.extra_args, "extra corewire arguments (after --)");

  auto* status = app.add_subcommand("status", "dataplane status");
  bool watch = false;
  int interval_ms = 1000, count = 0;
  auto* st = app.add_subcommand("stats", "counters from the stats segment");
  st->add_flag("-w,--watch", watch, "repeat, showing rates");
  st->add_option("-i,--interval-ms", interval_ms, "watch interval")->check(CLI::Range(10, 600000));
  st->add_option("-n,--count", count, "stop after N updates (0 = until interrupted)");
  bool clear = false;
  auto* reset =
      st->add_subcommand("reset", "count stats and services from now on (no effect on /metrics)");
  reset->add_flag("--clear", clear, "forget the reset: count from the dataplane's start again");
  auto* top = app.add_subcommand("top", "per-worker rates, refreshed");
  top->add_option("-i,--interval-ms", interval_ms, "refresh interval")
      ->check(CLI::Range(50, 600000));
  top->add_option("-n,--count", count, "stop after N updates (0 = until interrupted)");
  auto* services = app.add_subcommand("services", "services and their counters");
  auto* cfg = app.add_subcommand("config", "configuration");
  cfg->add_subcommand("show", "the running dataplane's configuration")->required();
  cfg->require_subcommand(1);
  std::string level;
  auto* ll = app.add_subcommand("log-level", "change the dataplane's log level");
  ll->add_option("level", level, cw::log::levels_text("|"))
      ->required()
      ->check(CLI::IsMember(
          std::vector<std::string>(cw::log::kLevels.begin(), cw::log::kLevels.end())));
  std::string action, name;
  auto* svc = app.add_subcommand("service", "enable or disable a service");
  svc->add_option("action", action, "enable|disable")
      ->required()
      ->check(CLI::IsMember({"enable", "disable"}));
  svc->add_option("name", name, "service name")->required();
  auto* drain = app.add_subcommand("drain", "stop accepting, finish in-flight requests, exit");
  auto* shutdown = app.add_subcommand("shutdown", "stop the dataplane now");
  auto* reload = app.add_subcommand("reload", "reload what can change live (like SIGHUP)");
  // rtp open|close|list: sessions of the rtp service at run time (docs/rtp.md).
  auto* rtp = app.add_subcommand("rtp", "open, close and list RTP sessions");
  rtp->require_subcommand(1);
  std::string peer, peer_b;
  int64_t pt = -1, ssrc = -1, peer_ssrc = -1, table = -1;
  auto* rtp_open = rtp->add_subcommand("open", "open a session: tone to PEER, stats of its stream");
  rtp_open->add_option("peer", peer, "the peer's RTP/RTCP address, a.b.c.d:port")->required();
  rtp_open->add_option("--pt", pt, "payload type (default: the table's)");
  rtp_open->add_option("--ssrc", ssrc, "our SSRC (default: random)");
  rtp_open->add_option("--peer-ssrc", peer_ssrc,
                       "the peer's SSRC: only its stream (default: any, learned)");
  rtp_open->add_option("--peer-b", peer_b,
                       "relay table: side B (PEER is side A); forwards each to the other");
  rtp_open->add_option("--table", table, "the k-th rtp table of the config (default 0)");
  auto* rtp_close = rtp->add_subcommand("close", "close a session (sends BYE)");
  rtp_close->add_option("peer", peer, "the session's peer (relay: either side), a.b.c.d:port")
      ->required();
  rtp_close->add_option("--peer-ssrc", peer_ssrc, "the peer's SSRC the session was opened with");
  rtp_close->add_option("--table", table, "the k-th rtp table of the config (default 0)");
  auto* rtp_list = rtp->add_subcommand("list", "sessions and their statistics");
  rtp_list->add_option("--table", table, "only the k-th rtp table (default: all)");

  // cluster init-ca|issue-cert: the cluster's certificates (docs/cluster.md).
  auto* cluster = app.add_subcommand("cluster", "the cluster's CA and node certificates");
  cluster->require_subcommand(1);
  std::string ca_dir, ca_name = "corewire cluster CA", node_name, out_dir;
  auto* init_ca = cluster->add_subcommand("init-ca", "make DIR/ca.pem and DIR/ca.key");
  init_ca->add_option("dir", ca_dir, "directory for the CA (created if missing)")->required();
  init_ca->add_option("--name", ca_name, "the CA's common name");
  auto* issue = cluster->add_subcommand("issue-cert", "make OUT/NAME.pem and OUT/NAME.key");
  issue->add_option("--ca", ca_dir, "the CA's directory (init-ca)")->required();
  issue->add_option("--name", node_name, "the node's name")->required();
  issue->add_option("--out", out_dir, "directory for the node's files")->required();

  CLI11_PARSE(app, argc, argv);
  cw::log::setup("corewirectl", "info");

  if (run->parsed()) {
    ro.config = config;
    ro.run_dir = run_dir;
    return cmd_run(ro);
  }
  if (init_ca->parsed()) return cmd_cluster_init_ca(ca_dir, ca_name);
  if (issue->parsed()) return cmd_cluster_issue_cert(ca_dir, node_name, out_dir);
  auto target = resolve_target(config, run_dir);
  if (!target) {
    spdlog::error("{}", target.error().message);
    return 2;
  }
  CliTarget t{socket.empty() ? target->socket : socket, stats.empty() ? target->stats : stats,
              json};
  if (status->parsed()) return cmd_status(t);
  if (reset->parsed()) return cmd_stats_reset(t, clear);
  if (st->parsed()) return cmd_stats(t, watch, interval_ms, count);
  if (top->parsed()) return cmd_top(t, interval_ms, count);
  if (services->parsed()) return cmd_services(t);
  if (cfg->parsed()) return cmd_request(t, {{"cmd", "config"}});
  if (ll->parsed()) return cmd_request(t, {{"cmd", "log-level"}, {"level", level}});
  if (svc->parsed())
    return cmd_request(t, {{"cmd", "service"}, {"name", name}, {"enable", action == "enable"}});
  if (drain->parsed()) return cmd_request(t, {{"cmd", "drain"}});
  if (shutdown->parsed()) return cmd_request(t, {{"cmd", "shutdown"}});
  if (reload->parsed()) return cmd_request(t, {{"cmd", "reload"}});
  if (rtp->parsed()) {
    Json r{{"cmd", "rtp"},
           {"op", rtp_open->parsed()    ? "open"
                  : rtp_close->parsed() ? "close"
                                        : "list"}};
    if (!rtp_list->parsed()) r["peer"] = peer;
    // Out-of-range numbers reach the service, which names what is wrong.
    if (!peer_b.empty()) r["peer_b"] = peer_b;
    if (pt >= 0) r["pt"] = uint64_t(pt);
    if (ssrc >= 0) r["ssrc"] = uint64_t(ssrc);
    if (peer_ssrc >= 0) r["peer_ssrc"] = uint64_t(peer_ssrc);
    if (table >= 0) r["table"] = uint64_t(table);
    return cmd_rtp(t, r);
  }
  return 2;
}
