// The disk helper thread (disk.hh).
#include "app/services/swarm/disk.hh"

#include <algorithm>

#include "app/services/swarm/storage.hh"

namespace cw::swarm {

Disk::Disk(uint32_t capacity)
    : capacity_(capacity), ops_(capacity), done_(capacity), thread_([this] { run(); }) {}

Disk::~Disk() {
  stop_.store(true, std::memory_order_release);
  seq_.fetch_add(1, std::memory_order_release);
  seq_.notify_one();
  thread_.join();
}

bool Disk::submit(const DiskOp& op) {
  if (outstanding_ >= capacity_ || !ops_.push(op)) return false;
  ++outstanding_;
  submitted_ = true;
  return true;
}

void Disk::kick() {
  if (!submitted_) return;
  submitted_ = false;
  seq_.fetch_add(1, std::memory_order_release);
  seq_.notify_one();
}

bool Disk::poll(DiskDone& d) {
  if (!done_.pop(d)) return false;
  --outstanding_;
  return true;
}

void Disk::run() {
  for (;;) {
    const uint32_t seen = seq_.load(std::memory_order_acquire);
    bool any = false;
    DiskOp op;
    while (ops_.pop(op)) {
      DiskDone d{op, DiskDone::ok};
      const Torrent& t = *op.torrent;
      if (op.kind == DiskOp::read) {
        if (!t.read_at(op.offset, op.buf, op.len)) d.status = DiskDone::io_error;
      } else {
        const meta::Hash h = meta::sha1({op.buf, op.len});
        const auto want = t.info().piece_hash(op.piece);
        if (!std::equal(h.begin(), h.end(), want.begin()))
          d.status = DiskDone::bad_hash;
        else if (!t.write_at(op.offset, op.buf, op.len))
          d.status = DiskDone::io_error;
      }
      // Cannot fail: the worker keeps at most capacity Ops outstanding.
      done_.push(d);
      any = true;
    }
    if (any && waker_) waker_(waker_arg_);
    if (stop_.load(std::memory_order_acquire)) return;
    if (!any) seq_.wait(seen, std::memory_order_acquire);
  }
}

}  // namespace cw::swarm
