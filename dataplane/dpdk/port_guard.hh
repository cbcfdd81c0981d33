// Bursts on a port whose peer may vanish mid-call. net_memif maps its peer's memory; when the
// peer leaves, the EAL interrupt thread marks the link down and unmaps that memory at once,
// with nothing that waits for a worker still inside rte_eth_rx_burst / rte_eth_tx_burst on
// it (DPDK 22.11, drivers/net/memif: memif_disconnect). A worker caught there faults. Checking
// the link before each burst narrows the window but cannot close it, so the burst itself is
// guarded: a SIGSEGV/SIGBUS raised inside a guarded burst on a port whose link is down
// returns from the burst as a failure instead of killing the process. Any other fault goes
// to the handler that was installed before ours (or the default action: a core dump with
// the faulting stack). See docs/dpdk.md, "When a memif peer leaves".
#pragma once

#include <cstdint>

struct rte_mbuf;

namespace cw::dp {

// Installs the fault handler once per process (idempotent, thread-safe). Setup path.
void install_port_guard();

inline constexpr int kBurstFaulted = -1;

// rte_eth_rx_burst / rte_eth_tx_burst, or kBurstFaulted when the call faulted because the
// port went down under it. After a fault the burst's mbufs are lost: some may sit in the
// driver's half-finished state and none can be freed safely (at most one burst per peer
// that left; counted by the caller). No cost beyond one sigsetjmp (no signal-mask save) and
// two thread-local stores per call.
int guarded_rx_burst(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n);
int guarded_tx_burst(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n);

}  // namespace cw::dp
