// The disk helper thread (disk.hh).
#include "app/services/swarm/disk.hh"

#include <algorithm>

#include "app/services/swarm/storage.hh"

namespace cw::swarm {

Disk::Disk(uint32_t capacity)
    : capacity_(capacity), ops_(capacity), done_(capacity), thread_([this] { run(); }) {}

Disk::~Disk() {
  bell_.stop();
  thread_.join();
}

bool Disk::submit(const DiskOp& op) {
  if (outstanding_ >= capacity_ || !ops_.push(op)) return false;
  ++outstanding_;
  bell_.queued();
  return true;
}

bool Disk::poll(DiskDone& d) {
  if (!done_.pop(d)) return false;
  --outstanding_;
  return true;
}

void Disk::run() {
  for (;;) {
    const uint32_t seen = bell_.seen();
    bool any = false;
    DiskOp op;
    while (ops_.pop(op)) {
      DiskDone d{op, DiskDone::ok};
      const Torrent& t = *op.torrent;
      if (op.kind == DiskOp::prefault) {
        if (!t.prefault(op.offset, op.len)) d.status = DiskDone::io_error;
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
    if (any) bell_.wake_worker();
    if (bell_.stopping()) return;
    if (!any) bell_.wait(seen);
  }
}

}  // namespace cw::swarm
