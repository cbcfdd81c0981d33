// What the two bare DPDK tools (cw-dpdk-reflector, cw-dpdk-blaster) share: port 0 with one
// queue pair, link state from the LSC interrupt plus a periodic re-read (drivers without
// LSC), and SIGINT/SIGTERM stopping the loop. Deliberately nothing of corewire's stack:
// these tools measure the link, so they must not share corewire's costs.
#pragma once

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <atomic>
#include <csignal>

namespace cw::bare {

inline constexpr uint16_t kPort = 0, kBurst = 32, kDesc = 1024;
inline volatile std::sig_atomic_t g_stop = 0;
inline std::atomic<bool> g_up{false};

inline bool read_link() {
  rte_eth_link l{};
  return rte_eth_link_get_nowait(kPort, &l) == 0 && l.link_status == RTE_ETH_LINK_UP;
}

// Configures and starts port kPort (one rx and one tx queue of kDesc descriptors, mbufs
// from mp); false on any failure. Installs the stop signals.
inline bool start_port(rte_mempool* mp) {
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  rte_eth_conf conf{};
  rte_eth_dev_info info{};
  if (!mp || !rte_eth_dev_is_valid_port(kPort)) return false;
  if (rte_eth_dev_info_get(kPort, &info) == 0 && (*info.dev_flags & RTE_ETH_DEV_INTR_LSC)) {
    conf.intr_conf.lsc = 1;
    rte_eth_dev_callback_register(
        kPort, RTE_ETH_EVENT_INTR_LSC,
        [](uint16_t, rte_eth_event_type, void*, void*) {
          g_up = read_link();
          return 0;
        },
        nullptr);
  }
  return rte_eth_dev_configure(kPort, 1, 1, &conf) == 0 &&
         rte_eth_rx_queue_setup(kPort, 0, kDesc, rte_socket_id(), nullptr, mp) == 0 &&
         rte_eth_tx_queue_setup(kPort, 0, kDesc, rte_socket_id(), nullptr) == 0 &&
         rte_eth_dev_start(kPort) == 0;
}

// Call every loop: re-reads the link every ~100 ms; true while it is up. A down port is
// not polled (memif crashes when polled after its peer left).
class LinkWatch {
 public:
  bool up() {
    const uint64_t now = rte_rdtsc();
    if (now >= next_) {
      g_up = read_link();
      next_ = now + rte_get_tsc_hz() / 10;
    }
    return g_up.load(std::memory_order_relaxed);
  }

 private:
  uint64_t next_ = 0;
};

// Stops and closes the port; the process then exits without rte_eal_cleanup, as corewire
// does: DPDK 22.11's cleanup unmaps its memory while the interrupt thread still runs, and
// that thread then faults on a memif handle (seen as SIGSEGV in rte_intr_fd_get).
inline void stop_port() {
  rte_eth_dev_stop(kPort);
  rte_eth_dev_close(kPort);
}

}  // namespace cw::bare
