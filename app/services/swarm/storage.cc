// Torrent loading and file I/O (setup, and the disk helper thread).
#include "app/services/swarm/storage.hh"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>

#include "app/services/file_io.hh"

// Linux 5.14; glibc 2.36's headers have it, older ones not.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace cw::swarm {

namespace {
const uintptr_t kPage = uintptr_t(::sysconf(_SC_PAGESIZE));

// A copy from a mapping whose file someone truncated faults with SIGBUS. The copy is guarded:
// a SIGBUS at an address inside the source range of this thread's copy in progress returns
// from it as a failure; any other signal goes to the handler installed before ours (the
// DPDK port guard chains the same way), or takes the default action.
struct CopyGuard {
  sigjmp_buf resume;
  const uint8_t* volatile from;
  volatile size_t len;
  volatile sig_atomic_t active;
};
thread_local CopyGuard t_copy{};  // trivially constructed: safe to read in the handler
struct sigaction g_prev_bus;
std::once_flag g_bus_installed;

void on_bus(int sig, siginfo_t* info, void* uc) {
  CopyGuard& g = t_copy;
  const auto* a = static_cast<const uint8_t*>(info->si_addr);
  if (g.active && a >= g.from && a < g.from + g.len) {
    g.active = 0;
    siglongjmp(g.resume, 1);
  }
  if (g_prev_bus.sa_flags & SA_SIGINFO) {
    if (g_prev_bus.sa_sigaction) return g_prev_bus.sa_sigaction(sig, info, uc);
  } else if (g_prev_bus.sa_handler != SIG_DFL && g_prev_bus.sa_handler != SIG_IGN) {
    return g_prev_bus.sa_handler(sig);
  }
  signal(sig, SIG_DFL);  // returning re-runs the access, which now dumps core where it was
}

void install_copy_guard() {
  std::call_once(g_bus_installed, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_bus;
    // The handler leaves by siglongjmp without restoring a signal mask (none is saved).
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

// sigsetjmp in the frame that is live when the handler jumps back; nothing written between
// the two is read after the jump.
[[gnu::noinline]] bool guarded_copy(uint8_t* out, const uint8_t* from, size_t n) {
  CopyGuard& g = t_copy;
  if (sigsetjmp(g.resume, 0) != 0) return false;
  g.from = from;
  g.len = n;
  g.active = 1;
  std::memcpy(out, from, n);
  g.active = 0;
  return true;
}
}  // namespace

Torrent::~Torrent() {
  for (size_t i = 0; i < maps_.size(); ++i)
    if (maps_[i]) ::munmap(const_cast<uint8_t*>(maps_[i]), m_.files[i].length);
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

Result<std::unique_ptr<Torrent>> load_torrent(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(path + ": cannot open: " + std::strerror(errno));
  auto t = std::make_unique<Torrent>();
  t->path_ = path;
  t->blob_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  if (t->blob_.empty() || t->blob_.size() > kMaxTorrentFile)
    return make_error(path + ": empty or larger than 16 MiB");
  // A token is at least 2 bytes ("0:"), a file entry at least 20.
  t->toks_.resize(t->blob_.size() / 2 + 2);
  t->files_.resize(t->blob_.size() / 20 + 1);
  const meta::Error e = meta::parse(t->blob_, t->toks_, t->files_, {}, t->m_);
  if (e != meta::Error::ok) {
    std::string why(meta::error_name(e));
    if (e == meta::Error::bencode)
      why += std::string(" (") + std::string(bencode::error_name(t->m_.bencode_error)) + ")";
    return make_error(path + ": not a valid torrent: " + why);
  }
  return t;
}

namespace {

// mkdir -p of every directory in front of the last '/'.
bool make_parents(const std::string& p) {
  for (size_t i = 1; i < p.size(); ++i) {
    if (p[i] != '/') continue;
    const std::string d = p.substr(0, i);
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

}  // namespace

Result<void> Torrent::open(const std::string& data_dir) {
  std::string root = data_dir;
  if (root.empty() || root.back() != '/') root += '/';
  if (m_.multi_file) root += std::string(m_.name) + '/';
  std::vector<char> rel(8192);
  for (const meta::FileEntry& fe : m_.files) {
    const size_t n = meta::file_path(m_, fe, rel);
    if (n == 0) return make_error(path_ + ": a file path longer than 8 KiB");
    const std::string p = root + std::string(rel.data(), n);
    if (!make_parents(p))
      return make_error(p + ": cannot create its directory: " + std::strerror(errno));
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EACCES || errno == EROFS)) fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(p + ": cannot open: " + std::strerror(errno));
    fds_.push_back(fd);
    // The torrent's length of it, whatever the file's size now: a leech's files grow as
    // pieces are written, and only written (verified) pieces are read through the mapping.
    void* m = nullptr;
    if (fe.length) {
      install_copy_guard();
      m = ::mmap(nullptr, fe.length, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) return make_error(p + ": cannot map: " + std::strerror(errno));
      // EFAULT (the page is past the file's end) is fine here; EINVAL is a kernel before 5.14.
      if (::madvise(m, kPage, MADV_POPULATE_READ) != 0 && errno == EINVAL) {
        ::munmap(m, fe.length);
        return make_error(p + ": the kernel has no MADV_POPULATE_READ (Linux 5.14 or later)");
      }
    }
    maps_.push_back(static_cast<const uint8_t*>(m));
  }
  return {};
}

template <class Op>
bool Torrent::span_files(uint64_t off, uint32_t len, Op&& op) const {
  if (off + len > m_.total_length || fds_.size() != m_.files.size()) return false;
  const auto& fs = m_.files;
  auto it = std::upper_bound(fs.begin(), fs.end(), off,
                             [](uint64_t o, const meta::FileEntry& f) { return o < f.offset; });
  size_t i = size_t(it - fs.begin());
  i = i ? i - 1 : 0;
  uint32_t done = 0;
  while (done < len) {
    while (i < fs.size() && off >= fs[i].offset + fs[i].length) ++i;
    if (i == fs.size()) return false;
    const uint64_t in_file = off - fs[i].offset;
    const uint32_t chunk = uint32_t(std::min<uint64_t>(len - done, fs[i].length - in_file));
    if (!op(i, in_file, done, chunk)) return false;
    done += chunk;
    off += chunk;
  }
  return true;
}

bool Torrent::read_at(uint64_t off, uint8_t* out, uint32_t len) const {
  return span_files(off, len, [&](size_t f, uint64_t at, uint32_t pos, uint32_t n) {
    return svc::pread_all(fds_[f], out + pos, n, off_t(at));
  });
}

bool Torrent::write_at(uint64_t off, const uint8_t* in, uint32_t len) const {
  return span_files(off, len, [&](size_t f, uint64_t at, uint32_t pos, uint32_t n) {
    return svc::pwrite_all(fds_[f], in + pos, n, off_t(at));
  });
}

bool Torrent::prefault(uint64_t off, uint32_t len) const {
  return span_files(off, len, [&](size_t f, uint64_t at, uint32_t, uint32_t n) {
    const uintptr_t from = uintptr_t(maps_[f] + at) & ~(kPage - 1);
    const uintptr_t to = uintptr_t(maps_[f] + at + n);
    int r;
    do r = ::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_READ);
    while (r != 0 && errno == EINTR);
    return r == 0;
  });
}

bool Torrent::copy_out(uint64_t off, uint32_t len, uint8_t* out) const {
  return span_files(off, len, [&](size_t f, uint64_t at, uint32_t pos, uint32_t n) {
    return guarded_copy(out + pos, maps_[f] + at, n);
  });
}

uint32_t Torrent::check(std::vector<uint8_t>& bits) const {
  bits.assign((size_t(m_.piece_count) + 7) / 8, 0);
  std::vector<uint8_t> buf(m_.piece_length);
  uint32_t good = 0;
  for (uint32_t p = 0; p < m_.piece_count; ++p) {
    const uint32_t n = m_.piece_size(p);
    if (!read_at(uint64_t(p) * m_.piece_length, buf.data(), n)) continue;
    const meta::Hash h = meta::sha1({buf.data(), n});
    if (std::equal(h.begin(), h.end(), m_.piece_hash(p).begin())) {
      set_bit(bits.data(), p);
      ++good;
    }
  }
  return good;
}

}  // namespace cw::swarm
