#include "dataplane/dpdk/port_guard.hh"

#include <rte_ethdev.h>
#include <setjmp.h>
#include <signal.h>

#include <mutex>

namespace cw::dp {
namespace {

// Per thread: where a guarded burst resumes after a fault. Trivially constructed, so reading
// it from the signal handler touches no lazy-initialisation code.
struct BurstGuard {
  sigjmp_buf resume;
  volatile sig_atomic_t active;
  uint16_t port;
};
thread_local BurstGuard t_guard{};

struct sigaction g_prev_segv, g_prev_bus;
std::once_flag g_installed;

void call_previous(int sig, siginfo_t* info, void* uc) {
  const struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) return prev.sa_sigaction(sig, info, uc);
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    return prev.sa_handler(sig);
  }
  // The default action: returning re-executes the faulting instruction, which now kills the
  // process with a core dump of the real stack.
  signal(sig, SIG_DFL);
}

void on_fault(int sig, siginfo_t* info, void* uc) {
  BurstGuard& g = t_guard;
  if (g.active) {
    // memif sets the link down before it unmaps (memif_disconnect), so a fault inside a
    // burst on a port that is up is a real bug and is not swallowed. The link read is a
    // load from the device's data (the driver's link_update does no I/O for memif).
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(g.port, &link) == 0 && link.link_status == RTE_ETH_LINK_DOWN) {
      g.active = 0;
      siglongjmp(g.resume, 1);
    }
  }
  call_previous(sig, info, uc);
}

}  // namespace

void install_port_guard() {
  std::call_once(g_installed, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    // SA_NODEFER: the handler leaves by siglongjmp without restoring the signal mask (the
    // jump buffer saves none, to keep bursts cheap), so the signal must not stay blocked.
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
    sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

// sigsetjmp must be called in the frame that is still live when the handler jumps back, and
// nothing modified between the two is read after it: one small function per burst kind.
template <uint16_t (*Burst)(uint16_t, uint16_t, rte_mbuf**, uint16_t)>
int guarded(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n) {
  BurstGuard& g = t_guard;
  if (sigsetjmp(g.resume, 0) != 0) return kBurstFaulted;
  g.port = port;
  g.active = 1;
  const uint16_t done = Burst(port, queue, pkts, n);
  g.active = 0;
  return done;
}

int guarded_rx_burst(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n) {
  return guarded<rte_eth_rx_burst>(port, queue, pkts, n);
}

int guarded_tx_burst(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n) {
  return guarded<rte_eth_tx_burst>(port, queue, pkts, n);
}

}  // namespace cw::dp
