// Warm restart: save 100 k items, load them into a fresh store, read every one back; and a
// truncated, corrupted or foreign file is refused with an error and leaves the store empty.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "app/services/kv/store/store.hh"
#include "tests/control/scratch_dir.hh"

namespace cw::kv {
namespace {

constexpr uint32_t kT0 = 1'700'000'000;

Store fresh(std::size_t mem = std::size_t{64} << 20) {
  StoreConfig cfg;
  cfg.memory_limit = mem;
  cfg.lru_bump_interval_s = 0;
  Result<Store> s = Store::create(cfg);
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

std::string key(int i) {
  return "key:" + std::to_string(i);
}
std::string val(int i) {
  return "value-" + std::to_string(i * 7919) + std::string(i % 50, 'x');
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void write_all(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

class KvStoreFile : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    for (int i = 0; i < 1000; ++i)
      ASSERT_EQ(src_.store({.key = key(i), .value = val(i), .flags = static_cast<uint32_t>(i)}, kT0)
                    .outcome,
                Outcome::stored);
    Result<SaveSummary> r = src_.save_file(path_, kT0);
    ASSERT_TRUE(r.ok()) << r.error().message;
    good_ = read_all(path_);
  }
  // Loads `data` into a fresh store: returns the error text ("" when it loaded).
  std::string load_bytes(const std::string& data) {
    write_all(path_, data);
    Store s = fresh();
    Result<LoadSummary> r = s.load_file(path_, kT0);
    EXPECT_TRUE(s.verify().ok());
    if (r.ok()) return "";
    EXPECT_EQ(s.stats().curr_items.get(), 0u) << "a refused file left items behind";
    EXPECT_NE(r.error().message.find(path_), std::string::npos) << r.error().message;
    return r.error().message;
  }
  ctl::test::ScratchDir dir_{"cw-kvstore"};
  std::string path_ = dir_ / "kv.store";
  Store src_ = fresh();
  std::string good_;
};

TEST_F(KvStoreFile, HundredThousandItemsRoundTrip) {
  Store a = fresh();
  for (int i = 0; i < 100'000; ++i)
    ASSERT_EQ(a.store({.key = key(i),
                       .value = val(i),
                       .flags = static_cast<uint32_t>(i),
                       .exptime = i % 10 == 0 ? 3600 : 0},
                      kT0)
                  .outcome,
              Outcome::stored);
  a.store({.key = "short-lived", .value = "v", .exptime = 5}, kT0);
  Result<SaveSummary> saved = a.save_file(path_, kT0 + 1);
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  EXPECT_EQ(saved.value().items, 100'001u);

  Store b = fresh();
  Result<LoadSummary> loaded = b.load_file(path_, kT0 + 10);  // short-lived has expired
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded.value().items, 100'000u);
  EXPECT_EQ(loaded.value().skipped_expired, 1u);
  EXPECT_EQ(loaded.value().dropped, 0u);
  ASSERT_TRUE(b.verify().ok());
  for (int i = 0; i < 100'000; ++i) {
    GetResult ga = a.get(key(i), kT0 + 10), gb = b.get(key(i), kT0 + 10);
    ASSERT_EQ(gb.outcome, Outcome::hit) << key(i);
    ASSERT_EQ(gb.item.value, val(i));
    ASSERT_EQ(gb.item.flags, static_cast<uint32_t>(i));
    ASSERT_EQ(gb.item.cas, ga.item.cas);
    ASSERT_EQ(gb.item.exptime, ga.item.exptime);
  }
  // New cas values stay above every loaded one.
  const StoreResult r = b.store({.key = "new", .value = "v"}, kT0 + 10);
  EXPECT_GT(r.cas, a.get(key(99'999), kT0 + 10).item.cas);
  // A second load into a store that is not empty is refused.
  EXPECT_FALSE(b.load_file(path_, kT0 + 10).ok());
}

TEST_F(KvStoreFile, LruOrderSurvives) {
  Store a = fresh();
  for (int i = 0; i < 10; ++i) a.store({.key = key(i), .value = "v"}, kT0);
  a.get(key(0), kT0);
  ASSERT_TRUE(a.save_file(path_, kT0).ok());
  Store b = fresh();
  ASSERT_TRUE(b.load_file(path_, kT0).ok());
  EXPECT_EQ(b.lru_keys_for_test(5, 1), a.lru_keys_for_test(5, 1));
  EXPECT_EQ(b.lru_keys_for_test(5, 1).front(), key(0));
}

TEST_F(KvStoreFile, SmallerStoreKeepsTheMostRecent) {
  Store a = fresh();
  for (int i = 0; i < 1000; ++i)
    a.store({.key = key(10000 + i), .value = std::string(100, 'v')}, kT0);
  ASSERT_TRUE(a.save_file(path_, kT0).ok());
  StoreConfig cfg;
  cfg.memory_limit = 16 * 1024;  // one page: 93 items of this size
  cfg.item_size_max = 16 * 1024;
  Result<Store> small = Store::create(cfg);
  ASSERT_TRUE(small.ok());
  Result<LoadSummary> r = small.value().load_file(path_, kT0);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().items, 1000u);
  EXPECT_EQ(small.value().stats().curr_items.get(), 16 * 1024 / a.chunk_bytes(9, 100));
  EXPECT_EQ(small.value().get(key(10999), kT0).outcome, Outcome::hit);  // stored last
  EXPECT_EQ(small.value().get(key(10000), kT0).outcome, Outcome::miss);
  EXPECT_TRUE(small.value().verify().ok());
}

TEST_F(KvStoreFile, GoodCopyLoads) {
  EXPECT_EQ(load_bytes(good_), "");
}

TEST_F(KvStoreFile, TruncatedFilesAreRefused) {
  for (std::size_t len : {std::size_t{0}, std::size_t{10}, std::size_t{63}, std::size_t{64},
                          std::size_t{100}, good_.size() / 2, good_.size() - 1}) {
    const std::string err = load_bytes(good_.substr(0, len));
    EXPECT_NE(err, "") << len;
  }
  EXPECT_NE(load_bytes(good_ + "extra").find("truncated"), std::string::npos);
}

TEST_F(KvStoreFile, CorruptedBytesAreRefused) {
  for (std::size_t pos : {std::size_t{0}, std::size_t{8}, std::size_t{20}, std::size_t{63},
                          std::size_t{64}, std::size_t{70}, good_.size() / 3, good_.size() - 1}) {
    std::string bad = good_;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x40);
    EXPECT_NE(load_bytes(bad), "") << pos;
  }
  std::string bad = good_;
  bad[good_.size() / 2] ^= 1;
  EXPECT_NE(load_bytes(bad).find("checksum"), std::string::npos);
}

TEST_F(KvStoreFile, ForeignFilesAreRefused) {
  EXPECT_NE(load_bytes("get foo\r\n").find("shorter"), std::string::npos);
  EXPECT_NE(load_bytes(std::string(4096, '\0')).find("magic"), std::string::npos);
  std::string v2 = good_;
  v2[8] = 2;  // a future version
  EXPECT_NE(load_bytes(v2).find("version"), std::string::npos);
  EXPECT_FALSE(fresh().load_file(dir_ / "missing", kT0).ok());
}

}  // namespace
}  // namespace cw::kv
