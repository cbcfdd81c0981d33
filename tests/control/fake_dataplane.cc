// A stand-in for corewire in corewirectl's tests: reads [control] from -c FILE, runs
// DataplaneControl over a fake runtime (1 worker, service "echo"), and echoes UDP datagrams
// on 127.0.0.1:--udp-port, counting them in the worker's IoCounters and ServiceStats as the
// real runtime would, and in two counters "echo" declares (kCounters). SIGTERM or a "drain" request
// drains (exit 0); exits 2 on a bad config.
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>
#include <span>

#include "app/runtime/mailbox.hh"
#include "control/dataplane_control.hh"

namespace {

struct FakeRuntime {
  std::vector<std::string> names{"echo"};
  cw::rt::WorkerStats ws;
  cw::rt::ServiceStats ss;
  cw::dp::IoCounters io;
  cw::rt::Mailboxes mail{1, 64};
  std::string backend = "fake";
  unsigned workers() const { return 1; }
  const std::string& backend_name() const { return backend; }
  const std::vector<std::string>& service_names() const { return names; }
  const cw::rt::WorkerStats& worker_stats(unsigned) const { return ws; }
  const cw::rt::ServiceStats& service_stats(unsigned, uint16_t) const { return ss; }
  const cw::dp::IoCounters& io_counters(unsigned) const { return io; }
  cw::rt::Mailboxes& mailboxes() { return mail; }
  enum : uint32_t { kEchoed, kLastBytes };
  static constexpr cw::rt::CounterDecl kCounters[] = {
      {"echoed", "Datagrams echoed"},
      {"last_datagram_bytes", "Size of the last datagram", cw::rt::CounterKind::gauge}};
  cw::dp::Counter named[2];
  std::span<const cw::rt::CounterDecl> counter_decls(uint16_t) const { return kCounters; }
  std::span<const cw::dp::Counter> service_counters(unsigned, uint16_t) const { return named; }
};

std::atomic<int> g_exit{0};  // 1 drain, 2 shutdown

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fake dataplane"};
  std::string config;
  int port = 0;
  app.add_option("-c", config)->required();
  app.add_option("--udp-port", port);
  bool check = false;
  app.add_flag("--check-config", check);
  CLI11_PARSE(app, argc, argv);
  auto cfg = cw::ctl::control_config_from_file(config);
  if (!cfg) {
    std::fprintf(stderr, "fake_dataplane: %s\n", cfg.error().message.c_str());
    return 2;
  }
  if (check) return 0;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("fake_dataplane: bind");
    return 1;
  }
  FakeRuntime rt;
  cw::ctl::DataplaneHooks hooks;
  hooks.request_exit = [](bool drain) { g_exit.store(drain ? 1 : 2); };
  hooks.set_log_level = [](const std::string&) { return std::string(); };
  hooks.config_json = [&] { return cw::ctl::Json{{"control", {{"socket", cfg->socket}}}}; };
  hooks.reload = [] {
    return cw::ctl::Json{{"applied", cw::ctl::Json::array()},
                         {"restart_needed", {"runtime.cores"}}};
  };
  auto ctl = cw::ctl::DataplaneControl<FakeRuntime>::start(rt, cfg.value(), hooks);
  if (!ctl) {
    std::fprintf(stderr, "fake_dataplane: %s\n", ctl.error().message.c_str());
    return 1;
  }
  while (g_exit.load() == 0) {
    timespec zero{0, 0};
    if (sigtimedwait(&sigs, nullptr, &zero) == SIGTERM) g_exit.store(1);
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    char buf[2048];
    sockaddr_in peer{};
    socklen_t pl = sizeof peer;
    const ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &pl);
    if (n < 0) continue;
    rt.io.rx_datagrams.add();
    rt.io.rx_bytes.add(uint64_t(n));
    rt.ss.requests.add();
    if (sendto(fd, buf, size_t(n), 0, reinterpret_cast<sockaddr*>(&peer), pl) == n) {
      rt.io.tx_datagrams.add();
      rt.io.tx_bytes.add(uint64_t(n));
      rt.ss.responses.add();
      rt.named[FakeRuntime::kEchoed].add();
    }
    rt.named[FakeRuntime::kLastBytes].set(uint64_t(n));
  }
  (*ctl)->set_state(cw::ctl::State::draining);
  cw::ctl::wait_drained(rt, std::chrono::milliseconds(1000));
  return 0;
}
