// Anonymous memory mapping for per-worker buffer arenas (rx arenas, tx pools). Pages are
// backed lazily by the kernel, so an arena sized for the worst case (e.g. max_datagram per
// slot) costs resident memory only where it is actually written. Setup-time only.
#pragma once

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "dataplane/result.hh"

namespace cw::dp::kernel {

class MemMap {
 public:
  MemMap() = default;
  MemMap(MemMap&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  MemMap& operator=(MemMap&& o) noexcept {
    if (this != &o) {
      unmap();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  MemMap(const MemMap&) = delete;
  MemMap& operator=(const MemMap&) = delete;
  ~MemMap() { unmap(); }

  // `what` names the arena in the error ("rx arena").
  static Result<MemMap> map(size_t bytes, const char* what) {
    MemMap m;
    if (bytes == 0) return m;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      return make_error(std::string(what) + ": mmap " + std::to_string(bytes) +
                        " bytes: " + std::strerror(errno));
    m.p_ = static_cast<uint8_t*>(p);
    m.n_ = bytes;
    return m;
  }

  uint8_t* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  void unmap() {
    if (p_) ::munmap(p_, n_);
    p_ = nullptr;
    n_ = 0;
  }
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace cw::dp::kernel
