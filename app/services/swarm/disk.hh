// The swarm's disk helper: one thread per owning worker that brings the pieces to send into
// memory (prefaults their mapped pages, storage.hh) and checks and writes downloaded pieces,
// so the worker's datapath never blocks on a file.
// The runtime offers no file I/O on its io_uring ring, so this is the bounded helper thread
// of issue 18 for both kernel backends (docs/swarm.md).
//
// The worker pushes Ops into one SPSC ring and, once per loop iteration, wakes the helper
// (doorbell.hh: no syscall while the helper is busy); the helper does
// them in order, pushes a Done per Op into the other ring and wakes the worker's poll
// (ctx.io.wake(), through the waker the worker installed). The worker never has more than
// `capacity` Ops outstanding, so the Done ring cannot overflow. A buffer named by an Op is
// the helper's from push until its Done is popped; the worker does not touch it meanwhile.
#pragma once

#include <cstdint>
#include <thread>

#include "app/runtime/spsc.hh"
#include "app/services/swarm/doorbell.hh"

namespace cw::swarm {

class Torrent;

struct DiskOp {
  enum Kind : uint8_t { prefault, verify_write };
  Kind kind = prefault;
  const Torrent* torrent = nullptr;
  uint64_t offset = 0;     // in the torrent's byte stream
  uint32_t len = 0;        // bytes
  uint32_t piece = 0;      // the piece (verify_write: its hash is checked first)
  uint8_t* buf = nullptr;  // verify_write: the piece's bytes
  uint64_t cookie = 0;     // the worker's, returned in Done
};

struct DiskDone {
  enum Status : uint8_t { ok, io_error, bad_hash };
  DiskOp op;
  Status status = ok;
};

class Disk {
 public:
  using Waker = Doorbell::Waker;
  explicit Disk(uint32_t capacity);
  ~Disk();
  Disk(const Disk&) = delete;
  Disk& operator=(const Disk&) = delete;

  // Worker side. Set the waker before the first submit.
  void set_waker(Waker w, void* arg) { bell_.set_waker(w, arg); }
  bool full() const { return outstanding_ >= capacity_; }
  uint32_t outstanding() const { return outstanding_; }
  // False when capacity Ops are outstanding (check full() first).
  bool submit(const DiskOp& op);
  // Wakes the helper if anything was submitted since the last kick (once per loop).
  void kick() { bell_.ring(); }
  bool poll(DiskDone& d);

 private:
  void run();

  const uint32_t capacity_;
  uint32_t outstanding_ = 0;  // worker only
  rt::Spsc<DiskOp> ops_;
  rt::Spsc<DiskDone> done_;
  Doorbell bell_;
  std::thread thread_;
};

}  // namespace cw::swarm
