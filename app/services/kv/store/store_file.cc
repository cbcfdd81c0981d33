// Warm restart: the store's items to a file and back (setup time; allocates, does I/O).
//
// File: a 64-byte header, then one record per item (32-byte record header, key, value), in
// each slab class's LRU order from least to most recent, so loading rebuilds the order.
// Integers are host order (x86-64: little endian); a file from another layout fails the
// version or checksum test. The header carries an XXH64 of the records and one of itself.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "app/services/file_io.hh"
#include "app/services/kv/store/item.hh"
#include "app/services/kv/store/store.hh"

namespace cw::kv {

namespace {

using svc::pwrite_all;

constexpr char kMagic[8] = {'C', 'W', 'K', 'V', 'S', 'T', 'O', 'R'};
constexpr uint32_t kFileVersion = 1;
constexpr std::size_t kIoChunk = 256 * 1024;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t record_header_bytes;
  uint64_t items;
  uint64_t payload_bytes;
  uint64_t payload_hash;  // XXH64, seed 0, of every byte after the header
  uint64_t next_cas;
  uint64_t saved_at;     // unix s
  uint64_t header_hash;  // XXH64 of the 56 bytes before this field
};
static_assert(sizeof(FileHeader) == 64);

struct Record {
  uint8_t key_len;
  uint8_t bits;  // Item::kFetched | kStale | kTokenSent
  uint16_t zero;
  uint32_t flags;
  uint32_t exptime;
  uint32_t atime;
  uint64_t cas;
  uint32_t value_len;
  uint32_t zero2;
};
static_assert(sizeof(Record) == 32);

uint64_t header_hash(const FileHeader& h) {
  return XXH64(&h, offsetof(FileHeader, header_hash), 0);
}

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Buffered pread of the records region; counts what it has handed out.
class Reader {
 public:
  Reader(int fd, off_t start, uint64_t len) : fd_(fd), off_(start), left_(len), buf_(kIoChunk) {}
  // false: fewer than n bytes left in the region, or a read error (errno set).
  bool read(void* dst, std::size_t n) {
    char* d = static_cast<char*>(dst);
    while (n > 0) {
      if (pos_ == end_ && !refill()) return false;
      const std::size_t k = std::min(n, end_ - pos_);
      if (d != nullptr) std::memcpy(d, buf_.data() + pos_, k), d += k;
      pos_ += k;
      n -= k;
    }
    return true;
  }
  bool skip(std::size_t n) { return read(nullptr, n); }
  uint64_t remaining() const { return left_ + (end_ - pos_); }

 private:
  bool refill() {
    if (left_ == 0) return false;
    const std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(left_, buf_.size()));
    ssize_t r;
    do r = ::pread(fd_, buf_.data(), want, off_);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return false;
    off_ += r;
    left_ -= static_cast<uint64_t>(r);
    pos_ = 0;
    end_ = static_cast<std::size_t>(r);
    return true;
  }
  int fd_;
  off_t off_;
  uint64_t left_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
};

}  // namespace

Result<SaveSummary> Store::save(int fd, uint32_t now) const {
  std::vector<char> buf;
  buf.reserve(kIoChunk);
  XXH64_state_t* hs = XXH64_createState();
  if (hs == nullptr) return make_error("kv store save: out of memory");
  XXH64_reset(hs, 0);
  off_t off = sizeof(FileHeader);
  uint64_t items = 0;
  bool ok = true;
  auto flush = [&] {
    XXH64_update(hs, buf.data(), buf.size());
    ok = ok && pwrite_all(fd, buf.data(), buf.size(), off);
    off += static_cast<off_t>(buf.size());
    buf.clear();
  };
  auto put = [&](const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const std::size_t k = std::min(n, kIoChunk - buf.size());
      buf.insert(buf.end(), c, c + k);
      c += k;
      n -= k;
      if (buf.size() == kIoChunk) flush();
    }
  };
  for (const SlabClass& c : classes_) {
    for (uint32_t ref = c.lru_tail; ref != 0 && ok; ref = at(ref)->lru_prev) {
      const Item* it = at(ref);
      if (!is_live(it, now)) continue;
      Record rec{};
      rec.key_len = it->key_len;
      rec.bits = static_cast<uint8_t>(it->bits & ~Item::kLinked);
      rec.flags = it->flags;
      rec.exptime = it->exptime;
      rec.atime = it->atime;
      rec.cas = it->cas;
      rec.value_len = it->value_len;
      put(&rec, sizeof rec);
      put(it->key(), it->key_len + std::size_t{it->value_len});
      ++items;
    }
  }
  flush();
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFileVersion;
  h.record_header_bytes = sizeof(Record);
  h.items = items;
  h.payload_bytes = static_cast<uint64_t>(off) - sizeof(FileHeader);
  h.payload_hash = XXH64_digest(hs);
  XXH64_freeState(hs);
  h.next_cas = cas_counter_;
  h.saved_at = now;
  h.header_hash = header_hash(h);
  if (!ok || !pwrite_all(fd, &h, sizeof h, 0)) return make_error(errno_text("kv store save"));
  return SaveSummary{items, static_cast<uint64_t>(off)};
}

Result<SaveSummary> Store::save_file(const std::string& path, uint32_t now) const {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(errno_text(("kv store save " + tmp).c_str()));
  Result<SaveSummary> r = save(fd, now);
  const bool synced = r.ok() && ::fsync(fd) == 0;
  ::close(fd);
  if (r.ok() && (!synced || ::rename(tmp.c_str(), path.c_str()) != 0))
    r = make_error(errno_text(("kv store save " + path).c_str()));
  if (!r.ok()) ::unlink(tmp.c_str());
  return r;
}

Result<LoadSummary> Store::load(int fd, uint32_t now, const LoadOptions& opt) {
  if (!opt.merge && stats_->curr_items.get() != 0)
    return make_error("kv store load: the store is not empty");
  Result<LoadSummary> r = load_into(fd, now, opt);
  if (!r.ok()) clear();  // never half-loaded, also after a merge
  return r;
}

Result<LoadSummary> Store::load_into(int fd, uint32_t now, const LoadOptions& opt) {
  struct stat sb;
  if (::fstat(fd, &sb) != 0) return make_error(errno_text("kv store load: fstat"));
  FileHeader h{};
  const uint64_t size = static_cast<uint64_t>(sb.st_size);
  if (size < sizeof h || ::pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
    return make_error("kv store load: file shorter than its header");
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
    return make_error("kv store load: not a corewire kv store file (bad magic)");
  if (h.version != kFileVersion || h.record_header_bytes != sizeof(Record))
    return make_error("kv store load: file version " + std::to_string(h.version) +
                      " not supported (want " + std::to_string(kFileVersion) + ")");
  if (h.header_hash != header_hash(h)) return make_error("kv store load: header checksum bad");
  if (size - sizeof h != h.payload_bytes)
    return make_error("kv store load: file is " + std::to_string(size) + " bytes, header says " +
                      std::to_string(h.payload_bytes + sizeof h) + " (truncated?)");

  {  // Pass 1: checksum, so a damaged file is refused before anything is linked.
    XXH64_state_t* hs = XXH64_createState();
    if (hs == nullptr) return make_error("kv store load: out of memory");
    XXH64_reset(hs, 0);
    std::vector<char> buf(kIoChunk);
    uint64_t left = h.payload_bytes;
    off_t off = sizeof h;
    while (left > 0) {
      const ssize_t r = ::pread(fd, buf.data(),
                                static_cast<std::size_t>(std::min<uint64_t>(left, kIoChunk)), off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      XXH64_update(hs, buf.data(), static_cast<std::size_t>(r));
      left -= static_cast<uint64_t>(r);
      off += r;
    }
    const uint64_t got = XXH64_digest(hs);
    XXH64_freeState(hs);
    if (left != 0) return make_error(errno_text("kv store load: read"));
    if (got != h.payload_hash) return make_error("kv store load: payload checksum bad");
  }

  // Pass 2: link the records. A well-checksummed file can still be foreign or buggy, so
  // every field is checked; on any fault the store is emptied again.
  LoadSummary sum;
  Reader rd(fd, sizeof h, h.payload_bytes);
  uint64_t max_cas = 0;
  auto corrupt = [&](const char* what) {
    clear();
    return make_error(std::string("kv store load: corrupt record: ") + what);
  };
  for (uint64_t n = 0; n < h.items; ++n) {
    Record rec;
    char key[kMaxKeyBytes];
    if (!rd.read(&rec, sizeof rec)) return corrupt("short record header");
    if (rec.key_len == 0 || rec.key_len > kMaxKeyBytes || rec.zero != 0 || rec.zero2 != 0 ||
        (rec.bits & ~(Item::kFetched | Item::kStale | Item::kTokenSent)) != 0 || rec.cas == 0)
      return corrupt("bad field");
    if (rd.remaining() < rec.key_len + uint64_t{rec.value_len}) return corrupt("past the end");
    if (!rd.read(key, rec.key_len)) return corrupt("short key");
    const std::string_view k(key, rec.key_len);
    if (rec.exptime != 0 && rec.exptime <= now) {
      ++sum.skipped_expired;
      if (!rd.skip(rec.value_len)) return corrupt("short value");
      continue;
    }
    if (opt.keep && !opt.keep(k)) {
      ++sum.not_kept;
      if (!rd.skip(rec.value_len)) return corrupt("short value");
      continue;
    }
    for (const Item* o = at(buckets_[bucket_of(k)]); o != nullptr; o = at(o->hash_next))
      if (o->key_view() == k) return corrupt("duplicate key");
    Outcome fail;
    Item* it = make(k, rec.value_len, rec.flags, rec.exptime, nullptr, now, &fail);
    if (it == nullptr) {
      ++sum.dropped;
      if (!rd.skip(rec.value_len)) return corrupt("short value");
      continue;
    }
    if (!rd.read(it->value(), rec.value_len)) {
      it->bits = 0;  // never linked: hand the chunk back through a link/unlink pair
      link(it);
      unlink(it);
      return corrupt("short value");
    }
    it->atime = rec.atime;
    it->cas = rec.cas;
    it->bits = rec.bits;
    link(it);
    max_cas = std::max(max_cas, rec.cas);
    ++sum.items;
  }
  if (rd.remaining() != 0) return corrupt("bytes after the last record");
  cas_counter_ = std::max({cas_counter_, h.next_cas, max_cas + 1});
  return sum;
}

Result<LoadSummary> Store::load_file(const std::string& path, uint32_t now,
                                     const LoadOptions& opt) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(errno_text(("kv store load " + path).c_str()));
  Result<LoadSummary> r = load(fd, now, opt);
  ::close(fd);
  if (!r.ok()) return make_error(path + ": " + r.error().message);
  return r;
}

}  // namespace cw::kv
