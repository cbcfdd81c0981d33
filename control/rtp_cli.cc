// corewirectl rtp open|close|list: the rtp service's run-time sessions (docs/rtp.md) through
// the control socket's `rtp` command (control/rtp_command.hh).
#include <cstdio>

#include <spdlog/spdlog.h>

#include "control/cli.hh"

namespace cw::ctl {

int cmd_rtp(const CliTarget& t, const Json& request) {
  // A list of 10,000 sessions is a few MB of JSON: give the workers and the socket time.
  auto r = control_request(t.socket, request, 10'000);
  if (!r) {
    spdlog::error("{}", r.error().message);
    return 1;
  }
  const Json& j = r.value();
  if (t.json) {
    std::printf("%s\n", j.dump().c_str());
    return j.value("ok", false) ? 0 : 1;
  }
  if (!j.value("ok", false)) {
    spdlog::error("{}", j.value("error", "request failed"));
    return 1;
  }
  if (request.at("op") != "list") {
    Json rest = j;
    rest.erase("ok");
    std::printf("ok %s\n", rest.dump().c_str());
    return 0;
  }
  std::printf("%-5s %-7s %-21s %10s %10s %3s %9s %9s %7s %7s %8s %6s %6s %6s %6s\n", "table",
              "session", "peer", "ssrc", "peer_ssrc", "pt", "rtp_out", "rtp_in", "lost", "jitter",
              "rtt_us", "late", "dups", "reord", "delay");
  for (const Json& tab : j.value("tables", Json::array())) {
    for (const Json& s : tab.value("sessions", Json::array())) {
      if (s.contains("peer_b")) {  // a relay session: its two sides
        std::printf("%-5llu %-7llu %s <-> %s%s (relay)\n", tab.value("table", 0ULL),
                    s.value("session", 0ULL), s.value("peer", std::string()).c_str(),
                    s.value("peer_b", std::string()).c_str(),
                    s.value("configured", false) ? "*" : "");
        continue;
      }
      std::printf(
          "%-5llu %-7llu %-21s %10llu %10llu %3llu %9llu %9llu %7lld %7llu %8llu %6llu %6llu "
          "%6llu %6llu\n",
          tab.value("table", 0ULL), s.value("session", 0ULL),
          (s.value("peer", std::string()) + (s.value("configured", false) ? "*" : "")).c_str(),
          s.value("ssrc", 0ULL), s.value("peer_ssrc", 0ULL), s.value("pt", 0ULL),
          s.value("rtp_out", 0ULL), s.value("rtp_in", 0ULL), s.value("lost", 0LL),
          s.value("jitter", 0ULL), s.value("rtt_us", 0ULL), s.value("jb_late", 0ULL),
          s.value("jb_duplicates", 0ULL), s.value("jb_reordered", 0ULL),
          s.value("playout_delay", 0ULL));
    }
  }
  std::printf("(* the table's configured session; jitter and delay in RTP timestamp units)\n");
  return 0;
}

}  // namespace cw::ctl
