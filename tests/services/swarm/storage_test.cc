// A torrent's files as one byte stream (app/services/swarm/storage.hh): a multi-file torrent
// (an empty file among them) read back through the start-up check, pread and the mappings
// the seed sends from, ranges straddling files byte-identical; prefault of a range a file
// no longer holds (truncated under us) fails instead of faulting, and so does a copy from
// the mapping there.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "app/services/swarm/storage.hh"
#include "tests/services/swarm/swarm_world.hh"

namespace cw::testing {
namespace {

namespace meta = swarm::meta;

struct MultiFile : ::testing::Test {
  static constexpr uint32_t kPiece = 16384;
  // Sizes that are not multiples of a page or a piece, so blocks straddle files.
  static constexpr std::array<meta::FileSpec, 4> kFiles = {
      {{"d/a.bin", 20000}, {"d/empty", 0}, {"b.bin", 5003}, {"c.bin", 41000}}};
  std::string dir, torrent;
  std::vector<uint8_t> data;

  MultiFile() {
    char t[] = "/tmp/cw-swarm-storage-XXXXXX";
    if (!::mkdtemp(t)) std::abort();
    dir = t;
    torrent = dir + "/multi.torrent";
    for (const auto& f : kFiles) {
      const size_t at = data.size();
      data.resize(at + f.length);
      for (size_t i = at; i < data.size(); ++i) data[i] = uint8_t(i * 7 + i / 251);
    }
    std::vector<uint8_t> hashes((data.size() / kPiece + 1) * meta::kHashSize);
    meta::PieceHasher h(kPiece, hashes);
    h.feed(data);
    h.finish();
    const meta::CreateParams cp{
        .name = "multi", .piece_length = kPiece, .files = kFiles, .pieces = h.hashes()};
    std::vector<uint8_t> out(4096);
    size_t n = 0;
    if (meta::create(cp, {}, out, n) != meta::Error::ok) std::abort();
    out.resize(n);
    SwarmFiles::write(torrent, out);
    std::filesystem::create_directories(dir + "/multi/d");
    size_t at = 0;
    for (const auto& f : kFiles) {
      SwarmFiles::write(dir + "/multi/" + std::string(f.path),
                        std::span(data).subspan(at, f.length));
      at += f.length;
    }
  }
  ~MultiFile() override {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

TEST_F(MultiFile, MappedBytesAreTheStreamAcrossFiles) {
  auto t = swarm::load_torrent(torrent);
  ASSERT_TRUE(t);
  ASSERT_TRUE((*t)->open(dir));
  std::vector<uint8_t> bits;
  EXPECT_EQ((*t)->check(bits), (*t)->info().piece_count);
  // Every 16 KiB block (the last short), and ranges around each file boundary.
  std::vector<std::pair<uint64_t, uint32_t>> ranges;
  for (uint64_t off = 0; off < data.size(); off += kPiece)
    ranges.push_back({off, uint32_t(std::min<uint64_t>(kPiece, data.size() - off))});
  ranges.push_back({19990, 20});                 // a.bin into b.bin (past the empty file)
  ranges.push_back({24990, 30});                 // b.bin into c.bin
  ranges.push_back({0, uint32_t(data.size())});  // everything
  for (const auto& [off, len] : ranges) {
    SCOPED_TRACE(off);
    ASSERT_TRUE((*t)->prefault(off, len));
    std::vector<uint8_t> mapped(len + 2, 0xAA), read(len, 0);
    ASSERT_TRUE((*t)->copy_out(off, len, mapped.data() + 1));
    EXPECT_EQ(mapped[0], 0xAA);  // nothing written around the range
    EXPECT_EQ(mapped[len + 1], 0xAA);
    EXPECT_TRUE(
        std::equal(data.begin() + long(off), data.begin() + long(off + len), mapped.begin() + 1));
    ASSERT_TRUE((*t)->read_at(off, read.data(), len));
    EXPECT_TRUE(std::equal(read.begin(), read.end(), data.begin() + long(off)));
  }
  EXPECT_FALSE((*t)->prefault(data.size() - 10, 11));  // past the stream's end
}

TEST_F(MultiFile, PrefaultOfATruncatedFileFails) {
  auto t = swarm::load_torrent(torrent);
  ASSERT_TRUE(t);
  ASSERT_TRUE((*t)->open(dir));
  const uint64_t c_at = 25003;  // c.bin's offset in the stream
  ASSERT_TRUE((*t)->prefault(c_at, 41000));
  // Someone truncates c.bin to one page: its first page is still there, the rest is not.
  ASSERT_EQ(::truncate((dir + "/multi/c.bin").c_str(), 4096), 0);
  EXPECT_TRUE((*t)->prefault(c_at, 4096));
  EXPECT_FALSE((*t)->prefault(c_at + 8192, 100));
  EXPECT_FALSE((*t)->prefault(c_at, 41000));
  EXPECT_FALSE((*t)->read_at(c_at + 8192, std::vector<uint8_t>(100).data(), 100));
  // A copy from the mapping past the new end is the SIGBUS the guard turns into false; the
  // page still in the file copies as before.
  std::vector<uint8_t> out(41000);
  EXPECT_FALSE((*t)->copy_out(c_at + 8192, 100, out.data()));
  EXPECT_FALSE((*t)->copy_out(c_at, 41000, out.data()));
  ASSERT_TRUE((*t)->copy_out(c_at, 4096, out.data()));
  EXPECT_TRUE(std::equal(out.begin(), out.begin() + 4096, data.begin() + long(c_at)));
  // The other files are untouched.
  EXPECT_TRUE((*t)->prefault(0, 25003));
}

}  // namespace
}  // namespace cw::testing
