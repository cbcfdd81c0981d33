// DPDK backend setup: EAL, port, queues, mempools, tables. May allocate and fail; every
// failure is a Result error naming what failed.
#include <pthread.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "dataplane/dpdk/dpdk_port.hh"
#include "dataplane/dpdk/port_guard.hh"

namespace cw::dp {
namespace {

std::string rte_err(int e) {
  return rte_strerror(e < 0 ? -e : e);
}

bool has_arg(const std::vector<std::string>& a, std::initializer_list<const char*> names) {
  for (const auto& s : a)
    for (const char* n : names)
      if (s == n || s.rfind(std::string(n) + "=", 0) == 0) return true;
  return false;
}

// EAL can be initialised once per process (rte_eal_cleanup + init again is unsupported), so
// the first backend initialises it and later ones (tests) reuse it.
std::mutex g_eal_mu;
bool g_eal_ready = false;

Result<void> eal_init_once(const DpdkConfig& cfg,
                           const std::function<void(const std::string&)>& log) {
  std::lock_guard g(g_eal_mu);
  if (g_eal_ready) {
    if (log) log("dpdk: EAL already initialised in this process; eal arguments ignored");
    return {};
  }
  // rte_eal_init pins the calling (main) thread to the main lcore, and every thread it
  // starts later would inherit that; keep the main thread's affinity as it was.
  cpu_set_t saved;
  CPU_ZERO(&saved);
  pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);

  std::vector<std::string> args{"corewire"};
  if (!has_arg(cfg.eal_args, {"-l", "-c", "--lcores"})) {
    int first = 0;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &saved)) {
        first = c;
        break;
      }
    args.push_back("-l");
    args.push_back(std::to_string(first));
  }
  // Each EAL instance on a machine needs its own runtime files: keep none (--in-memory),
  // or, with --no-huge (which --in-memory refuses), use a per-process prefix with no files
  // in it (--no-shconf, --no-telemetry; otherwise every run leaves ~6 MiB in /var/run/dpdk),
  // and remove its empty directory at exit (below).
  if (!has_arg(cfg.eal_args, {"--file-prefix", "--in-memory"})) {
    if (has_arg(cfg.eal_args, {"--no-huge"})) {
      args.push_back("--file-prefix=corewire-" + std::to_string(getpid()));
      if (!has_arg(cfg.eal_args, {"--no-shconf"})) args.push_back("--no-shconf");
      if (!has_arg(cfg.eal_args, {"--no-telemetry"})) args.push_back("--no-telemetry");
    } else {
      args.push_back("--in-memory");
    }
  }
  args.insert(args.end(), cfg.eal_args.begin(), cfg.eal_args.end());
  std::string line;
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
    line += (line.empty() ? "" : " ") + a;
  }
  argv.push_back(nullptr);
  if (log) log("dpdk: EAL " + line);
  const int r = rte_eal_init(int(argv.size() - 1), argv.data());
  pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  if (r < 0) return make_error("dpdk.eal: rte_eal_init failed: " + rte_err(rte_errno));
  g_eal_ready = true;
  // EAL never removes its runtime directory; remove it at exit when nothing is left in it.
  // rmdir refuses a non-empty one (shared config, telemetry socket), which then stays as
  // EAL intends.
  std::atexit([] { rmdir(rte_eal_get_runtime_dir()); });
  return {};
}

int on_link_change(uint16_t, rte_eth_event_type, void* arg, void*) {
  // EAL interrupt thread. Workers read the flag once per poll.
  auto* sh = static_cast<DpdkShared*>(arg);
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(sh->port, &link) == 0)
    sh->link_up.store(link.link_status == RTE_ETH_LINK_UP, std::memory_order_relaxed);
  return 0;
}

Result<void> find_port(DpdkShared& sh, const std::string& port,
                       const std::function<void(const std::string&)>& log) {
  if (port.empty()) return make_error("dpdk.port: no port given (PCI address or vdev)");
  unsigned id = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), id);
  if (ec == std::errc{} && p == port.data() + port.size()) {
    if (id >= RTE_MAX_ETHPORTS || !rte_eth_dev_is_valid_port(uint16_t(id)))
      return make_error("dpdk.port: no port " + port + " (" +
                        std::to_string(rte_eth_dev_count_avail()) + " available)");
    sh.port = uint16_t(id);
    return {};
  }
  const std::string name = port.substr(0, port.find(','));
  uint16_t pid = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &pid) == 0) {
    sh.port = pid;
    return {};
  }
  // Not probed by EAL: hot-plug it (vdevs; also PCI devices EAL skipped).
  const int r = rte_dev_probe(port.c_str());
  if (r < 0) return make_error("dpdk.port: cannot probe '" + port + "': " + rte_err(r));
  if (rte_eth_dev_get_port_by_name(name.c_str(), &pid) != 0)
    return make_error("dpdk.port: '" + port + "' probed but no ethdev port named '" + name + "'");
  sh.port = pid;
  sh.hotplugged = true;
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(pid, &info) == 0) sh.device = info.device;
  if (log) log("dpdk: hot-plugged " + port);
  return {};
}

}  // namespace

Result<net::LocalAddr> parse_cidr(const std::string& s) {
  auto p = parse_prefix(s);
  if (!p) return p.error();
  return net::LocalAddr{p.value().addr_be, p.value().len};
}

DpdkShared::~DpdkShared() {
  if (port_started) rte_eth_dev_stop(port);
  if (lsc_registered)
    rte_eth_dev_callback_unregister(port, RTE_ETH_EVENT_INTR_LSC, on_link_change, this);
  if (port_started || hotplugged) rte_eth_dev_close(port);
  if (hotplugged && device) rte_dev_remove(device);
  for (size_t i = 0; i < frag_tables.size(); ++i) {
    if (frag_tables[i]) rte_ip_frag_table_destroy(frag_tables[i]);
    if (death_rows[i]) rte_ip_frag_free_death_row(death_rows[i].get(), 0);
  }
  for (auto* r : arp_rings) rte_ring_free(r);
  for (auto* p : pools) rte_mempool_free(p);
}

Result<std::unique_ptr<DpdkBackend>> DpdkBackend::create(
    const IoConfig& io, std::span<const SocketSpec> specs, const DpdkConfig& cfg,
    const std::function<void(const std::string&)>& log) {
  const unsigned nw = io.workers;
  if (nw == 0) return make_error("dpdk: at least one worker is needed");
  if (cfg.addresses.empty() || cfg.addresses.size() > net::kMaxLocalAddrs)
    return make_error("dpdk.addresses: 1 to " + std::to_string(net::kMaxLocalAddrs) +
                      " IPv4 addresses are needed (the stack has no DHCP)");
  if (cfg.mtu < 576 || cfg.mtu > 9000) return make_error("dpdk.mtu: must be 576-9000");
  for (const SocketSpec& sp : specs)
    if (sp.transport == Transport::udp && !sp.server && nw > 1)
      return make_error("udp " + to_string(sp.bind) +
                        ": client UDP sockets need a single worker on DPDK (replies "
                        "cannot be steered to the sending worker's queue)");
  if (auto r = eal_init_once(cfg, log); !r) return r.error();

  auto sh = std::make_shared<DpdkShared>();
  sh->io = io;
  sh->cfg = cfg;
  sh->tsc_hz = rte_get_tsc_hz();
  sh->arp_policy.learn_from_requests = cfg.arp_learn_from_requests;
  if (auto r = find_port(*sh, cfg.port, log); !r) return r.error();
  const uint16_t port = sh->port;
  const std::string where = "dpdk.port " + cfg.port + ": ";

  rte_eth_dev_info info{};
  if (int r = rte_eth_dev_info_get(port, &info); r != 0)
    return make_error(where + "dev_info: " + rte_err(r));
  // One queue pair per worker. Fewer queues than workers is refused rather than shared:
  // a queue has exactly one owner thread (DPDK queues are not thread-safe).
  if (info.max_rx_queues < nw || info.max_tx_queues < nw)
    return make_error(
        where + "driver " + info.driver_name + " offers " + std::to_string(info.max_rx_queues) +
        " rx / " + std::to_string(info.max_tx_queues) + " tx queues; " + std::to_string(nw) +
        " workers need one pair each: use at most " +
        std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)) + " workers");

  rte_eth_conf conf{};
  const uint64_t want_rss = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_UDP;
  const uint64_t rss = want_rss & info.flow_type_rss_offloads;
  if (nw > 1 && rss != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = rss;
    if (log) log("dpdk: RSS over IPv4/UDP across " + std::to_string(nw) + " queues");
  } else if (nw > 1 && log) {
    log("dpdk: driver " + std::string(info.driver_name) +
        " has no RSS; every queue is served but the device decides which queue gets a packet");
  }
  const uint64_t rx_ck = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
  const uint64_t tx_ck = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
  sh->rx_csum_offload = (info.rx_offload_capa & rx_ck) == rx_ck;
  sh->tx_csum_offload = (info.tx_offload_capa & tx_ck) == tx_ck;
  if (sh->rx_csum_offload) conf.rxmode.offloads |= rx_ck;
  if (sh->tx_csum_offload) conf.txmode.offloads |= tx_ck;
  if (log)
    log(std::string("dpdk: checksums rx ") + (sh->rx_csum_offload ? "NIC" : "software") + ", tx " +
        (sh->tx_csum_offload ? "NIC" : "software"));
  // Link changes by interrupt when the driver has them (memif, most NICs); workers also poll
  // the link every kDpdkHousekeepNs.
  if (*info.dev_flags & RTE_ETH_DEV_INTR_LSC) conf.intr_conf.lsc = 1;

  if (int r = rte_eth_dev_configure(port, uint16_t(nw), uint16_t(nw), &conf); r != 0)
    return make_error(where + "configure: " + rte_err(r));
  uint16_t nb_rxd = cfg.rx_desc, nb_txd = cfg.tx_desc;
  if (int r = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd); r != 0)
    return make_error(where + "descriptors: " + rte_err(r));

  // MTU: the stack never sends frames above it and the mbufs must hold a full frame.
  uint16_t cur_mtu = 0;
  rte_eth_dev_get_mtu(port, &cur_mtu);
  if (cur_mtu != cfg.mtu) {
    if (int r = rte_eth_dev_set_mtu(port, cfg.mtu); r != 0)
      return make_error(where + "cannot set MTU " + std::to_string(cfg.mtu) + " (device has " +
                        std::to_string(cur_mtu) + "): " + rte_err(r));
  }
  sh->small_max = cfg.mtu - net::kIpv4MinHdrLen - net::kUdpHdrLen;

  // Mempools, one per worker (rx and tx share it). The NIC holds nb_rxd, the TX ring nb_txd;
  // the rest covers the held burst, the ARP wait queue and frames in flight.
  const uint32_t need = nb_rxd + nb_txd + kDpdkRxBurst + kDpdkTxBatch + cfg.arp_queue + 64;
  const uint32_t nmbuf = std::max(need, io.rx_buffers + io.tx_buffers);
  const uint32_t room = std::max<uint32_t>(RTE_MBUF_DEFAULT_BUF_SIZE,
                                           RTE_PKTMBUF_HEADROOM + cfg.mtu + net::kEthHdrLen + 4);
  rte_mempool_objsz objsz{};
  const uint32_t obj = rte_mempool_calc_obj_size(uint32_t(sizeof(rte_mbuf)) + room, 0, &objsz);
  const double mib = double(obj) * nmbuf * nw / (1024.0 * 1024.0);
  if (log) {
    char b[256];
    std::snprintf(b, sizeof b,
                  "dpdk: mempools %u worker(s) x %u mbufs x %u B = %.1f MiB "
                  "(EAL memory, -m / hugepages, should be about twice that)",
                  nw, nmbuf, obj, mib);
    log(b);
  }
  static std::atomic<unsigned> generation{0};  // pool names are global to the process
  const unsigned gen = generation.fetch_add(1);
  const int sock = rte_eth_dev_socket_id(port) < 0 ? SOCKET_ID_ANY : rte_eth_dev_socket_id(port);
  sh->drops = std::make_unique<net::DropCounters[]>(nw);
  sh->tcp = std::make_unique<TcpPublished[]>(nw);
  sh->cpu = std::make_unique<WorkerCpu[]>(nw);
  const uint64_t frag_cycles = sh->tsc_hz * cfg.frag_timeout_ms / 1000;
  const uint32_t frag_buckets = std::max<uint32_t>(16, std::bit_ceil(cfg.frag_flows) / 4);
  for (unsigned i = 0; i < nw; ++i) {
    const std::string nm = "cw" + std::to_string(gen) + "_" + std::to_string(i);
    rte_mempool* mp =
        rte_pktmbuf_pool_create(("mp" + nm).c_str(), nmbuf, 256, 0, uint16_t(room), sock);
    if (!mp)
      return make_error("dpdk: mempool of " + std::to_string(nmbuf) + " mbufs for worker " +
                        std::to_string(i) + ": " + rte_err(rte_errno) +
                        " (give EAL more memory: -m or hugepages)");
    sh->pools.push_back(mp);
    rte_eth_rxconf rxc = info.default_rxconf;
    rxc.offloads = conf.rxmode.offloads;
    if (int r = rte_eth_rx_queue_setup(port, uint16_t(i), nb_rxd, unsigned(sock), &rxc, mp); r != 0)
      return make_error(where + "rx queue " + std::to_string(i) + ": " + rte_err(r));
    rte_eth_txconf txc = info.default_txconf;
    txc.offloads = conf.txmode.offloads;
    if (int r = rte_eth_tx_queue_setup(port, uint16_t(i), nb_txd, unsigned(sock), &txc); r != 0)
      return make_error(where + "tx queue " + std::to_string(i) + ": " + rte_err(r));
    rte_ip_frag_tbl* ft =
        rte_ip_frag_table_create(frag_buckets, 4, frag_buckets * 4, frag_cycles, sock);
    if (!ft) return make_error("dpdk: reassembly table for worker " + std::to_string(i));
    sh->frag_tables.push_back(ft);
    sh->death_rows.push_back(std::make_unique<rte_ip_frag_death_row>());
    if (nw > 1) {
      rte_ring* r = rte_ring_create_elem(("ar" + nm).c_str(), sizeof(ArpCopyElem), kArpCopyRing,
                                         sock, RING_F_SC_DEQ);
      if (!r) return make_error("dpdk: ARP ring for worker " + std::to_string(i));
      sh->arp_rings.push_back(r);
    }
  }

  if (conf.intr_conf.lsc &&
      rte_eth_dev_callback_register(port, RTE_ETH_EVENT_INTR_LSC, on_link_change, sh.get()) == 0)
    sh->lsc_registered = true;
  if (int r = rte_eth_dev_start(port); r != 0) return make_error(where + "start: " + rte_err(r));
  sh->port_started = true;
  install_port_guard();  // before any worker bursts on the port

  // The stack's interface.
  rte_ether_addr mac{};
  rte_eth_macaddr_get(port, &mac);
  std::copy(std::begin(mac.addr_bytes), std::end(mac.addr_bytes), sh->ifc.mac.begin());
  for (const auto& a : cfg.addresses) sh->ifc.addrs[sh->ifc.naddrs++] = a;
  sh->ifc.gateway_be = cfg.gateway_be;
  sh->ifc.mtu = cfg.mtu;
  rte_eth_link link{};
  rte_eth_link_get_nowait(port, &link);
  sh->link_up.store(link.link_status == RTE_ETH_LINK_UP);

  // Sockets: UDP demultiplexing by destination port (the stack owns the whole port space).
  sh->by_port.assign(65536, kNoSocket);
  uint16_t next_ephemeral = 49152, next_tcp_ephemeral = 49152;
  std::vector<bool> tcp_used(65536, false);  // TCP server ports (worker 0's listeners)
  for (size_t s = 0; s < specs.size(); ++s) {
    const SocketSpec& sp = specs[s];
    Endpoint b = sp.bind;
    const std::string what = (sp.transport == Transport::udp ? "udp " : "tcp ") + to_string(b);
    if (b.addr_be != 0 && !sh->ifc.is_local(b.addr_be))
      return make_error(what + ": address is not one of dpdk.addresses");
    if (sp.transport == Transport::tcp) {
      if (sp.server) {  // port 0: the first free one from 49152, as for UDP
        uint16_t p = ntohs(b.port_be);
        if (p == 0) {
          while (next_tcp_ephemeral != 0 && tcp_used[next_tcp_ephemeral]) ++next_tcp_ephemeral;
          if (next_tcp_ephemeral == 0) return make_error(what + ": no free port");
          p = next_tcp_ephemeral++;
          b.port_be = htons(p);
        }
        if (tcp_used[p]) return make_error(what + ": port already used by another dpdk socket");
        tcp_used[p] = true;
      }
    } else {
      uint16_t p = ntohs(b.port_be);
      if (p == 0) {
        while (next_ephemeral != 0 && sh->by_port[next_ephemeral] != kNoSocket) ++next_ephemeral;
        if (next_ephemeral == 0) return make_error(what + ": no free port");
        p = next_ephemeral++;
        b.port_be = htons(p);
      }
      if (sh->by_port[p] != kNoSocket)
        return make_error(what + ": port already used by another dpdk socket");
      sh->by_port[p] = uint16_t(s);
    }
    sh->specs.push_back(sp);
    sh->bound.push_back(b);
  }
  if (log) {
    char m[32];
    std::snprintf(m, sizeof m, "%02x:%02x:%02x:%02x:%02x:%02x", mac.addr_bytes[0],
                  mac.addr_bytes[1], mac.addr_bytes[2], mac.addr_bytes[3], mac.addr_bytes[4],
                  mac.addr_bytes[5]);
    log("dpdk: port " + std::to_string(port) + " (" + info.driver_name + ") mac " + m + ", " +
        std::to_string(nw) + " queue pair(s), " + std::to_string(nb_rxd) + "/" +
        std::to_string(nb_txd) + " descriptors, mtu " + std::to_string(cfg.mtu) + ", link " +
        (sh->link_up.load() ? "up" : "down"));
  }
  return std::unique_ptr<DpdkBackend>(new DpdkBackend(std::move(sh)));
}

namespace {
// Gives the worker thread an EAL lcore id (mempool caches, rte_lcore_id()) and returns it
// when the thread exits.
struct LcoreRegistration {
  bool registered = false;
  ~LcoreRegistration() {
    if (registered) rte_thread_unregister();
  }
};
thread_local LcoreRegistration t_lcore;
}  // namespace

Result<std::unique_ptr<DpdkWorker>> DpdkBackend::open_worker(unsigned i) {
  if (i >= sh_->io.workers) return make_error("dpdk: no worker " + std::to_string(i));
  if (rte_lcore_id() == LCORE_ID_ANY) {
    if (rte_thread_register() != 0)
      return make_error("dpdk: worker " + std::to_string(i) + ": rte_thread_register: " +
                        rte_err(rte_errno) + " (no free lcore id; RTE_MAX_LCORE reached?)");
    t_lcore.registered = true;
  }
  return std::make_unique<DpdkWorker>(sh_, i);
}

Endpoint DpdkBackend::bound(SocketId s) const {
  return sh_->bound.at(s);
}
const net::DropCounters& DpdkBackend::drops(unsigned w) const {
  return sh_->drops[w];
}
bool DpdkBackend::link_up() const {
  return sh_->link_up.load(std::memory_order_relaxed);
}
const net::Mac& DpdkBackend::mac() const {
  return sh_->ifc.mac;
}
uint16_t DpdkBackend::port_id() const {
  return sh_->port;
}

std::vector<DpdkBackend::PortStat> DpdkBackend::port_stats() const {
  std::vector<PortStat> out;
  rte_eth_stats st{};
  if (rte_eth_stats_get(sh_->port, &st) == 0) {
    out.push_back({"ipackets", st.ipackets});
    out.push_back({"opackets", st.opackets});
    out.push_back({"ibytes", st.ibytes});
    out.push_back({"obytes", st.obytes});
    out.push_back({"imissed", st.imissed});
    out.push_back({"ierrors", st.ierrors});
    out.push_back({"oerrors", st.oerrors});
    out.push_back({"rx_nombuf", st.rx_nombuf});
  }
  const int n = rte_eth_xstats_get_names(sh_->port, nullptr, 0);
  if (n > 0) {
    std::vector<rte_eth_xstat_name> names(static_cast<size_t>(n));
    std::vector<rte_eth_xstat> vals(static_cast<size_t>(n));
    if (rte_eth_xstats_get_names(sh_->port, names.data(), unsigned(n)) == n &&
        rte_eth_xstats_get(sh_->port, vals.data(), unsigned(n)) == n)
      for (int k = 0; k < n; ++k)
        out.push_back(
            {std::string("x.") + names[size_t(vals[size_t(k)].id)].name, vals[size_t(k)].value});
  }
  return out;
}

DpdkBackend::LinkState DpdkBackend::link_state() const {
  LinkState l;
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(sh_->port, &link) != 0) return l;
  l.up = link.link_status == RTE_ETH_LINK_UP;
  // Speed is meaningless on a link that is down; RTE_ETH_SPEED_NUM_UNKNOWN is UINT32_MAX.
  l.speed_mbps = l.up && link.link_speed != RTE_ETH_SPEED_NUM_UNKNOWN ? link.link_speed : 0;
  l.full_duplex = l.up && link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
  l.autoneg = link.link_autoneg == RTE_ETH_LINK_AUTONEG;
  return l;
}

std::vector<std::pair<std::string, uint64_t>> DpdkBackend::counters_by_name() const {
  std::vector<std::pair<std::string, uint64_t>> out;
  // The link first: a driver's extended statistics can fill the segment's backend block, and
  // what is cut is the tail (control/segment_layout.hh names "link." entries gauges).
  const LinkState l = link_state();
  const std::string link = "link." + std::to_string(sh_->port) + ".";
  out.emplace_back(link + "up", l.up);
  out.emplace_back(link + "speed_mbps", l.speed_mbps);
  out.emplace_back(link + "full_duplex", l.full_duplex);
  out.emplace_back(link + "autoneg", l.autoneg);
  for (size_t r = 0; r < net::kDropReasonCount; ++r) {
    uint64_t v = 0;
    for (unsigned w = 0; w < sh_->io.workers; ++w) v += sh_->drops[w].get(net::DropReason(r));
    if (v) out.emplace_back(std::string("drop.") + net::drop_reason_name(net::DropReason(r)), v);
  }
  uint64_t busy = 0;
  for (unsigned w = 0; w < sh_->io.workers; ++w) busy += sh_->cpu[w].busy_cycles.get();
  out.emplace_back("cpu.busy_ns",
                   sh_->tsc_hz ? uint64_t(double(busy) * 1e9 / double(sh_->tsc_hz)) : 0);
  bool tcp = false;
  for (const SocketSpec& sp : sh_->specs) tcp = tcp || sp.transport == Transport::tcp;
  for (size_t k = 0; tcp && k < kTcpCounterCount; ++k) {
    uint64_t v = 0;
    for (unsigned w = 0; w < sh_->io.workers; ++w) v += sh_->tcp[w].v[k].get();
    out.emplace_back(std::string("tcp.") + kTcpCounterNames[k], v);
  }
  for (auto& st : port_stats()) out.emplace_back("port." + st.name, st.value);
  return out;
}

// Workers hold sh_ too; the port is stopped when the last of them is gone (the runtime
// joins worker threads before it destroys WorkerIo objects or the backend).
DpdkBackend::~DpdkBackend() = default;

}  // namespace cw::dp
