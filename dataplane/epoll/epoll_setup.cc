// epoll backend setup: validates the config, opens every socket (main thread), and builds
// each worker's epoll instance, eventfd and buffers (worker thread). May allocate and fail.
#include <fcntl.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "dataplane/epoll/epoll_io.hh"

namespace cw::dp {

namespace {

Error sys_error(unsigned w, const char* what) {
  return make_error("epoll worker " + std::to_string(w) + ": " + what + ": " +
                    std::strerror(errno));
}

}  // namespace

Result<std::unique_ptr<EpollBackend>> EpollBackend::create(const IoConfig& cfg,
                                                           std::span<const SocketSpec> specs) {
  if (cfg.workers == 0) return make_error("epoll: at least one worker is needed");
  if (cfg.max_conns == 0 || cfg.max_conns > kernel::kMaxConnSlots)
    return make_error("runtime.max_conns: must be 1.." + std::to_string(kernel::kMaxConnSlots));
  if (cfg.rx_buffers == 0 || cfg.rx_buffer_size < 64)
    return make_error("runtime.rx_buffers/rx_buffer_size: need at least 1 buffer of 64 bytes");
  if (cfg.max_datagram == 0 || cfg.max_datagram > 65535)
    return make_error("runtime.max_datagram: must be 1..65535");
  if (cfg.tx_buffers == 0) return make_error("runtime.tx_buffers: must be at least 1");
  if (cfg.conn_out_limit == 0) return make_error("runtime.conn_out_limit: must be at least 1");
  // Best effort: a lower limit only means accept() meets EMFILE earlier (counted, handled).
  (void)kernel::raise_nofile_limit(kernel::nofile_wanted(cfg, specs.size()));
  auto set = kernel::open_socket_set(specs, cfg.workers);
  if (!set) return set.error();
  auto b = std::unique_ptr<EpollBackend>(new EpollBackend());
  b->cfg_ = cfg;
  b->specs_.assign(specs.begin(), specs.end());
  b->sockets_ = std::move(*set);
  return b;
}

Result<std::unique_ptr<EpollWorker>> EpollBackend::open_worker(unsigned i) {
  if (i >= cfg_.workers) return make_error("epoll: no worker " + std::to_string(i));
  auto fds = sockets_.take(i);
  if (fds.size() != specs_.size())
    return make_error("epoll: worker " + std::to_string(i) + " was already opened");
  auto w = std::unique_ptr<EpollWorker>(new EpollWorker(i, cfg_));
  auto r = w->setup(std::move(fds), specs_);
  if (!r) return r.error();
  return w;
}

EpollWorker::EpollWorker(unsigned id, const IoConfig& cfg)
    : id_(id),
      cfg_(cfg),
      idle_ns_(uint64_t(cfg.idle_timeout_ms) * 1'000'000),
      conns_(cfg.max_conns) {
  out_pool_.set_limit(cfg.worker_out_limit);
}

Result<void> EpollWorker::setup(std::vector<kernel::Fd> fds, std::span<const SocketSpec> specs) {
  using namespace epoll_limits;
  fds_ = std::move(fds);
  epfd_owner_ = kernel::Fd(epoll_create1(EPOLL_CLOEXEC));
  if (!epfd_owner_.valid()) return sys_error(id_, "epoll_create1");
  epfd_ = epfd_owner_.get();
  evfd_owner_ = kernel::Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!evfd_owner_.valid()) return sys_error(id_, "eventfd");
  evfd_ = evfd_owner_.get();
  spare_fd_ = kernel::Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));

  // Tags in epoll_event.data.u64: kind in the top byte, SocketId or ConnId below.
  auto add = [&](int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  if (!add(evfd_, uint64_t(1) << 56)) return sys_error(id_, "epoll_ctl eventfd");
  socks_.resize(specs.size());
  for (size_t s = 0; s < specs.size(); ++s) {
    Sock& k = socks_[s];
    k.fd = fds_[s].get();
    k.transport = specs[s].transport;
    k.server = specs[s].server;
    k.bind = specs[s].bind;
    if (k.fd < 0) continue;  // tcp client group: no socket of its own
    const uint64_t kind = k.transport == Transport::udp ? 2 : 3;
    if (!add(k.fd, (kind << 56) | s))
      return make_error("epoll worker " + std::to_string(id_) + ": " + kernel::describe(specs[s]) +
                        ": epoll_ctl: " + std::strerror(errno));
  }

  // Receive arena and the large-datagram slots (lazily backed: see MemMap).
  auto arena = kernel::MemMap::map(size_t(cfg_.rx_buffers) * cfg_.rx_buffer_size, "rx arena");
  if (!arena) return arena.error();
  rx_arena_ = std::move(*arena);
  if (cfg_.max_datagram > cfg_.rx_buffer_size) {
    large_stride_ = (cfg_.max_datagram + 4095) & ~4095u;
    auto large = kernel::MemMap::map(size_t(kRxLargeSlots) * large_stride_, "rx large slots");
    if (!large) return large.error();
    rx_large_ = std::move(*large);
  }
  for (uint32_t i = 0; i < kRxLargeSlots; ++i) large_order_[i] = i;

  // Datagram tx: the pool, and one pending-send entry per buffer so commits never fail.
  auto pool = kernel::TxPool::create(cfg_.tx_buffers, kernel::kTxLargeBuffers, cfg_.max_datagram);
  if (!pool) return pool.error();
  tx_pool_ = std::move(*pool);
  tx_cap_ = tx_pool_.count();
  tx_msgs_ = std::make_unique<mmsghdr[]>(tx_cap_);
  tx_iov_ = std::make_unique<iovec[]>(tx_cap_);
  tx_addr_ = std::make_unique<sockaddr_in[]>(tx_cap_);
  tx_buf_ = std::make_unique<uint32_t[]>(tx_cap_);
  tx_sock_ = std::make_unique<SocketId[]>(tx_cap_);
  gso_on_ = cfg_.udp_gso && kernel::udp_gso_available();
  if (gso_on_) {
    gso_out_ = std::make_unique<uint32_t[]>(tx_cap_);
    gso_msgs_ = std::make_unique<mmsghdr[]>(tx_cap_);
  }
  return {};
}

// Drain (io.hh): each listener leaves the epoll set and is closed, so it is never reported
// ready again; connections still in its backlog are reset by the kernel. Called from the
// worker loop on mail, once per drain, so it lives with the setup code.
void EpollWorker::stop_accepting() {
  for (size_t s = 0; s < socks_.size(); ++s) {
    Sock& k = socks_[s];
    if (k.transport != Transport::tcp || !k.server || k.fd < 0) continue;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, k.fd, nullptr);
    fds_[s].reset();
    k.fd = -1;
  }
}

EpollWorker::~EpollWorker() {
  // Close every connection still held (open, draining or owed a stream_closed) and give
  // its output back; listeners, UDP sockets, eventfd and epoll close via their Fd owners.
  for (uint32_t i = 0; i < conns_.high_water(); ++i) {
    Slot& s = conns_.at(i);
    if (s.state == kernel::ConnState::free) continue;
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
    s.x.out.clear(out_pool_);
  }
  for (uint32_t i = 0; i < tx_n_; ++i) tx_pool_.give(tx_buf_[i]);
}

}  // namespace cw::dp
