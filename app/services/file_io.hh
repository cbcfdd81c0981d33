// Whole-range positional file I/O for the services' setup code and helper threads (never a
// worker's datapath): pread/pwrite until all n bytes are through, retried after EINTR and
// short transfers.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace cw::svc {

namespace detail {
template <class Io, class Byte>
bool all_at(Io io, int fd, Byte* p, size_t n, off_t at) {
  while (n) {
    const ssize_t r = io(fd, p, n, at);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;  // an error (errno says which) or the end of the file
    p += r;
    n -= size_t(r);
    at += r;
  }
  return true;
}
}  // namespace detail

// False on an error or when the file ends before n bytes.
inline bool pread_all(int fd, void* p, size_t n, off_t at) {
  return detail::all_at([](int f, uint8_t* b, size_t k, off_t o) { return ::pread(f, b, k, o); },
                        fd, static_cast<uint8_t*>(p), n, at);
}
inline bool pwrite_all(int fd, const void* p, size_t n, off_t at) {
  return detail::all_at(
      [](int f, const uint8_t* b, size_t k, off_t o) { return ::pwrite(f, b, k, o); }, fd,
      static_cast<const uint8_t*>(p), n, at);
}

}  // namespace cw::svc
