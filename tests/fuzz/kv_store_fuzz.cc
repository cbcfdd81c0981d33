// libFuzzer target: the kv store under a sequence of operations decoded from the input, in a
// store small enough that eviction and the no-memory paths run. Invariants: every structure
// agrees with the others (Store::verify), a plain set is read back at once, and a save/load
// round trip keeps every item. An input starting with 0xFF is instead a warm-restart file
// body: the harness writes a well-formed header with valid checksums around it, so the
// record parser itself is fuzzed; it must load or refuse, never crash, and leave a sane store.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "app/services/kv/store/store.hh"

namespace kv = cw::kv;

#define CHECK(c)                                                        \
  do {                                                                  \
    if (!(c)) {                                                         \
      std::fprintf(stderr, "CHECK failed line %d: %s\n", __LINE__, #c); \
      std::abort();                                                     \
    }                                                                   \
  } while (0)

namespace {

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::string_view bytes(size_t len) {
    len = len < n ? len : n;
    std::string_view s(reinterpret_cast<const char*>(p), len);
    p += len;
    n -= len;
    return s;
  }
};

kv::Store small_store() {
  kv::StoreConfig cfg;
  cfg.memory_limit = 8 * 1024;
  cfg.item_size_max = 1024;
  cfg.hash_buckets = 16;  // long chains
  cw::Result<kv::Store> s = kv::Store::create(cfg);
  CHECK(s.ok());
  return std::move(s).value();
}

int memfd_with(std::string_view data) {
  const int fd = memfd_create("kv_store_fuzz", 0);
  CHECK(fd >= 0);
  CHECK(write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  return fd;
}

// The file header as store_file.cc writes it (docs/kv-store.md, "Warm restart file").
void fuzz_load(Input in) {
  const uint64_t items = in.byte() % 64;
  const std::string_view payload = in.bytes(in.n);
  char h[64] = {'C', 'W', 'K', 'V', 'S', 'T', 'O', 'R'};
  const uint32_t version = 1, rec = 32;
  const uint64_t len = payload.size(), hash = XXH64(payload.data(), payload.size(), 0);
  const uint64_t next_cas = 1, saved_at = 0;
  std::memcpy(h + 8, &version, 4);
  std::memcpy(h + 12, &rec, 4);
  std::memcpy(h + 16, &items, 8);
  std::memcpy(h + 24, &len, 8);
  std::memcpy(h + 32, &hash, 8);
  std::memcpy(h + 40, &next_cas, 8);
  std::memcpy(h + 48, &saved_at, 8);
  const uint64_t hh = XXH64(h, 56, 0);
  std::memcpy(h + 56, &hh, 8);
  const int fd = memfd_with(std::string(h, 64) + std::string(payload));
  kv::Store s = small_store();
  cw::Result<kv::LoadSummary> r = s.load(fd, 1000);
  close(fd);
  CHECK(s.verify().ok());
  if (!r.ok()) CHECK(s.stats().curr_items.get() == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  if (size > 0 && data[0] == 0xFF) {
    in.byte();
    fuzz_load(in);
    return 0;
  }
  kv::Store s = small_store();
  uint32_t now = 1000;
  static const int64_t kExp[] = {
      0, 0, -1, 1, 2, 100, kv::kMaxRelativeExptime, kv::kMaxRelativeExptime + 1, 1005, 1'000'000};
  for (int step = 0; in.n > 0 && step < 2000; ++step) {
    const uint8_t op = in.byte();
    now += op >> 6;  // 0..3 seconds
    // Short keys from a small alphabet collide often; length byte 0 gives the empty key.
    const std::string_view key = in.bytes(in.byte() % 12);
    const std::string_view value = in.bytes(in.byte() % 4 == 0 ? in.byte() * 4u : in.byte() % 16);
    const int64_t exptime = kExp[in.byte() % std::size(kExp)];
    const uint64_t cas = in.byte() % 4 == 0 ? 0 : in.byte();
    switch (op % 12) {
      case 0: {
        kv::StoreResult r = s.store({.key = key, .value = value, .exptime = 0}, now);
        if (r.outcome == kv::Outcome::stored) {
          kv::GetResult g = s.get(key, now);
          CHECK(g.outcome == kv::Outcome::hit && g.item.value == value && g.item.cas == r.cas);
        }
        break;
      }
      case 1:
      case 2: {
        const auto mode = static_cast<kv::StoreMode>(in.byte() % 6);
        const uint8_t f = in.byte();
        s.store({.mode = mode,
                 .key = key,
                 .value = value,
                 .flags = f,
                 .exptime = exptime,
                 .cas = cas,
                 .invalidate = (f & 1) != 0,
                 .vivify = (f & 2) != 0,
                 .vivify_exptime = exptime},
                now);
        break;
      }
      case 3:
      case 4: {
        const uint8_t f = in.byte();
        kv::GetResult g = s.get(key, now,
                                {.touch = (f & 1) != 0,
                                 .exptime = exptime,
                                 .vivify = (f & 2) != 0,
                                 .vivify_exptime = exptime,
                                 .recache = (f & 4) != 0,
                                 .recache_ttl = f >> 3,
                                 .counts_as_touch = (f & 1) != 0});
        if (g.outcome == kv::Outcome::hit) CHECK(g.item.key == key);
        break;
      }
      case 5:
        s.touch(key, exptime, now);
        break;
      case 6: {
        const uint8_t f = in.byte();
        s.remove({.key = key,
                  .cas = cas,
                  .invalidate = (f & 1) != 0,
                  .update_ttl = (f & 2) != 0,
                  .exptime = exptime},
                 now);
        break;
      }
      case 7:
      case 8: {
        const uint8_t f = in.byte();
        uint64_t delta = 0;
        for (char c : in.bytes(f % 9)) delta = delta << 8 | static_cast<uint8_t>(c);
        kv::ArithResult r = s.arith({.key = key,
                                     .incr = op % 12 == 7,
                                     .delta = delta,
                                     .cas = cas,
                                     .vivify = (f & 16) != 0,
                                     .vivify_exptime = exptime,
                                     .initial = delta,
                                     .update_ttl = (f & 32) != 0,
                                     .exptime = exptime},
                                    now);
        if (r.outcome == kv::Outcome::hit) {
          kv::GetResult g = s.get(key, now);
          if (g.outcome == kv::Outcome::hit) CHECK(g.item.cas == r.cas);
        }
        break;
      }
      case 9:
        if (in.byte() % 8 == 0) s.flush_all(exptime, now);
        break;
      case 10:
        s.expire_some(now, in.byte());
        break;
      default:
        break;
    }
    if (step % 32 == 0) CHECK(s.verify().ok());
  }
  CHECK(s.verify().ok());

  // Warm restart keeps every live item.
  const int fd = memfd_create("kv_store_fuzz", 0);
  CHECK(fd >= 0);
  cw::Result<kv::SaveSummary> saved = s.save(fd, now);
  CHECK(saved.ok());
  kv::Store t = small_store();
  cw::Result<kv::LoadSummary> loaded = t.load(fd, now);
  close(fd);
  CHECK(loaded.ok());
  CHECK(loaded.value().items == saved.value().items);
  CHECK(t.verify().ok());
  return 0;
}
