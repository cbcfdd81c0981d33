// Metainfo against BEP 3/12: single- and multi-file torrents, the info-hash over the exact
// info bytes (checked against a digest computed elsewhere), every limit an error, and the
// writer's output parsing back to the same files and pieces.
#include "app/services/swarm/metainfo.hh"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace cw::swarm::meta {
namespace {

Bytes B(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string hex(const Hash& h) {
  const auto x = to_hex(h);
  return {x.begin(), x.end()};
}

std::string pieces(size_t n) {
  std::string s;
  for (size_t i = 0; i < n * kHashSize; ++i) s += static_cast<char>(i);
  return s;
}

// A single-file info dict: 40000 bytes in 32 KiB pieces (2 pieces).
std::string single_info() {
  return "d6:lengthi40000e4:name5:a.bin12:piece lengthi32768e6:pieces40:" + pieces(2) + "e";
}

struct Parsed {
  std::array<bencode::Token, 256> toks;
  std::array<FileEntry, 8> files;
  Metainfo m;
  std::string buf;
  Error run(std::string s, const Limits& lim = {}) {
    buf = std::move(s);
    return parse(B(buf), toks, files, lim, m);
  }
};

TEST(Metainfo, SingleFile) {
  Parsed p;
  ASSERT_EQ(p.run("d8:announce20:http://t.example/ann4:info" + single_info() + "e"), Error::ok);
  const Metainfo& m = p.m;
  EXPECT_EQ(m.announce, "http://t.example/ann");
  EXPECT_EQ(m.name, "a.bin");
  EXPECT_EQ(m.piece_length, 32768u);
  EXPECT_EQ(m.piece_count, 2u);
  EXPECT_EQ(m.total_length, 40000u);
  EXPECT_EQ(m.piece_size(0), 32768u);
  EXPECT_EQ(m.piece_size(1), 40000u - 32768u);
  EXPECT_FALSE(m.multi_file);
  ASSERT_EQ(m.files.size(), 1u);
  char path[64];
  ASSERT_EQ(file_path(m, m.files[0], path), 5u);
  EXPECT_EQ(std::string_view(path, 5), "a.bin");
  EXPECT_EQ(std::string(m.info.begin(), m.info.end()), single_info());
  // hashlib.sha1(info).hexdigest() of the same bytes.
  EXPECT_EQ(hex(m.info_hash), "f281ee1d61f87108125ea6cf7095e690f463057a");
  EXPECT_EQ(m.piece_hash(1)[0], 20);
  std::vector<std::string> trackers;
  m.for_each_tracker([&](size_t, std::string_view u) { trackers.emplace_back(u); });
  EXPECT_EQ(trackers, std::vector<std::string>{"http://t.example/ann"});
}

TEST(Metainfo, MultiFileAndAnnounceList) {
  const std::string info =
      "d5:filesld6:lengthi20000e4:pathl3:dir5:a.txteed6:lengthi0e4:pathl5:emptyeed6:lengthi30000e"
      "4:pathl1:beee4:name4:root12:piece lengthi16384e6:pieces80:" +
      pieces(4) + "7:privatei1ee";
  Parsed p;
  ASSERT_EQ(p.run("d8:announce3:u:113:announce-listll3:u:13:u:2el3:u:3ee4:info" + info + "e"),
            Error::ok);
  const Metainfo& m = p.m;
  EXPECT_TRUE(m.multi_file);
  EXPECT_TRUE(m.is_private);
  EXPECT_EQ(m.total_length, 50000u);
  ASSERT_EQ(m.files.size(), 3u);
  EXPECT_EQ(m.files[1].offset, 20000u);
  EXPECT_EQ(m.files[2].offset, 20000u);
  EXPECT_EQ(m.files[2].length, 30000u);
  char path[64];
  const size_t n = file_path(m, m.files[0], path);
  EXPECT_EQ(std::string_view(path, n), "dir/a.txt");
  EXPECT_EQ(file_path(m, m.files[0], std::span<char>(path, 8)), 0u);  // too small
  std::vector<std::pair<size_t, std::string>> t;
  m.for_each_tracker([&](size_t tier, std::string_view u) { t.emplace_back(tier, u); });
  ASSERT_EQ(t.size(), 3u);  // BEP 12: the list replaces "announce"
  EXPECT_EQ(t[1], (std::pair<size_t, std::string>{0, "u:2"}));
  EXPECT_EQ(t[2], (std::pair<size_t, std::string>{1, "u:3"}));
  // An empty list: announce serves.
  ASSERT_EQ(p.run("d8:announce3:u:013:announce-listle4:info" + single_info() + "e"), Error::ok);
  t.clear();
  p.m.for_each_tracker([&](size_t tier, std::string_view u) { t.emplace_back(tier, u); });
  EXPECT_EQ(t, (std::vector<std::pair<size_t, std::string>>{{0, "u:0"}}));
}

std::string with_info(const std::string& info) {
  return "d4:info" + info + "e";
}

TEST(Metainfo, Errors) {
  Parsed p;
  EXPECT_EQ(p.run("d4:info"), Error::bencode);
  EXPECT_EQ(p.m.bencode_error, bencode::Error::truncated);
  EXPECT_EQ(p.run("le"), Error::not_dict);
  EXPECT_EQ(p.run("de"), Error::no_info);
  EXPECT_EQ(p.run("d4:infoi1ee"), Error::not_dict);
  EXPECT_EQ(p.run("d8:announcei1e4:info" + single_info() + "e"), Error::bad_announce);
  EXPECT_EQ(p.run("d13:announce-listl3:u:1e4:info" + single_info() + "e"), Error::bad_announce);
  const std::string pc = "12:piece lengthi32768e6:pieces40:" + pieces(2);
  for (const char* name : {"0:", "2:..", "1:.", "3:a/b"}) {
    EXPECT_EQ(p.run(with_info("d6:lengthi40000e4:name" + std::string(name) + pc + "e")),
              Error::bad_name)
        << name;
  }
  EXPECT_EQ(p.run(with_info("d6:lengthi40000e4:name1:a" + pc + "e")), Error::ok);
  const std::string big_name(kMaxComponent + 1, 'x');
  EXPECT_EQ(p.run(with_info("d6:lengthi40000e4:name256:" + big_name + pc + "e")), Error::bad_name);
  // Piece length: below 16 KiB, not a multiple of it, above 64 MiB.
  for (const char* pl : {"i8192e", "i20000e", "i134217728e", "i-16384e", "1:x"}) {
    EXPECT_EQ(p.run(with_info("d6:lengthi40000e4:name1:a12:piece length" + std::string(pl) +
                              "6:pieces40:" + pieces(2) + "e")),
              Error::bad_piece_length)
        << pl;
  }
  EXPECT_EQ(p.run(with_info("d6:lengthi40000e4:name1:a12:piece lengthi32768e6:pieces39:" +
                            pieces(2).substr(1) + "e")),
            Error::bad_pieces);
  // One hash too few, one too many.
  EXPECT_EQ(p.run(with_info(
                "d6:lengthi40000e4:name1:a12:piece lengthi32768e6:pieces20:" + pieces(1) + "e")),
            Error::piece_count);
  EXPECT_EQ(p.run(with_info(
                "d6:lengthi40000e4:name1:a12:piece lengthi32768e6:pieces60:" + pieces(3) + "e")),
            Error::piece_count);
  EXPECT_EQ(p.run(with_info("d4:name1:a" + pc + "e")), Error::bad_length);
  EXPECT_EQ(p.run(with_info("d6:lengthi-1e4:name1:a" + pc + "e")), Error::bad_length);
  EXPECT_EQ(p.run(with_info("d5:filesle6:lengthi1e4:name1:a" + pc + "e")), Error::bad_length);
  EXPECT_EQ(p.run(with_info("d5:filesle4:name1:a" + pc + "e")), Error::bad_files);
  EXPECT_EQ(p.run(with_info("d6:lengthi0e4:name1:a12:piece lengthi32768e6:pieces0:e")),
            Error::too_large);
  Limits small;
  small.max_total = 30000;
  EXPECT_EQ(p.run(with_info("d6:lengthi40000e4:name1:a" + pc + "e"), small), Error::too_large);
}

TEST(Metainfo, BadPaths) {
  Parsed p;
  const std::string tail = "4:name1:r12:piece lengthi16384e6:pieces20:" + pieces(1) + "e";
  const auto files = [&](const std::string& list) {
    return with_info("d5:filesl" + list + "e" + tail);
  };
  EXPECT_EQ(p.run(files("d6:lengthi1e4:pathl1:aee")), Error::ok);
  for (const char* path : {"le", "l0:e", "l2:..e", "l1:.e", "l3:a/be", "li1ee", "l1:a2:..e"}) {
    EXPECT_EQ(p.run(files("d6:lengthi1e4:path" + std::string(path) + "e")), Error::bad_path)
        << path;
  }
  EXPECT_EQ(p.run(files("d6:lengthi1e4:path3:abce")), Error::bad_path);
  EXPECT_EQ(p.run(files("d4:pathl1:aee")), Error::bad_files);
  EXPECT_EQ(p.run(files("d6:lengthi-1e4:pathl1:aee")), Error::bad_files);
  EXPECT_EQ(p.run(files("i1e")), Error::bad_files);
  std::string nine;
  for (int i = 0; i < 9; ++i) nine += "d6:lengthi1e4:pathl1:" + std::to_string(i) + "ee";
  EXPECT_EQ(p.run(files(nine)), Error::too_many_files);  // 8 FileEntry slots
  Limits lim;
  lim.max_components = 2;
  EXPECT_EQ(p.run(files("d6:lengthi1e4:pathl1:a1:b1:cee"), lim), Error::bad_path);
  lim = {};
  lim.max_path_bytes = 4;
  EXPECT_EQ(p.run(files("d6:lengthi1e4:pathl2:ab2:cdee"), lim), Error::bad_path);  // "ab/cd"
  // Lengths whose sum overflows stop at max_total, not at a wrapped total.
  EXPECT_EQ(p.run(files("d6:lengthi9223372036854775807e4:pathl1:aeed6:lengthi9223372036854775807e"
                        "4:pathl1:bee")),
            Error::too_large);
}

TEST(PieceHasher, SplitsAcrossFeeds) {
  std::vector<uint8_t> data(100000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  std::array<uint8_t, 7 * kHashSize> out{};
  PieceHasher h(16384, out);
  // Odd feed sizes that straddle piece boundaries.
  for (size_t at = 0; at < data.size();) {
    const size_t n = std::min<size_t>(5000, data.size() - at);
    ASSERT_TRUE(h.feed(Bytes(data).subspan(at, n)));
    at += n;
  }
  ASSERT_TRUE(h.finish());
  ASSERT_EQ(h.pieces(), 7u);  // ceil(100000 / 16384)
  for (size_t i = 0; i < 7; ++i) {
    const size_t len = std::min<size_t>(16384, data.size() - i * 16384);
    const Hash want = sha1(Bytes(data).subspan(i * 16384, len));
    EXPECT_TRUE(std::equal(want.begin(), want.end(), out.begin() + i * kHashSize)) << i;
  }
  std::array<uint8_t, kHashSize> one{};
  PieceHasher full(16384, one);
  EXPECT_FALSE(full.feed(Bytes(data).first(40000)));
}

TEST(MetainfoCreate, MultiFileRoundTrip) {
  const std::array<FileSpec, 3> files = {{{"dir/a.txt", 20000}, {"dir/sub/b", 0}, {"c", 30000}}};
  const std::array<std::string_view, 2> trackers = {"http://a/ann", "http://b/ann"};
  const std::string hashes = pieces(4);
  CreateParams cp{.trackers = trackers,
                  .name = "root",
                  .piece_length = 16384,
                  .files = files,
                  .pieces = B(hashes),
                  .is_private = true,
                  .created_by = "corewire",
                  .creation_date = 1700000000};
  std::array<uint8_t, 1024> out{};
  size_t size = 0;
  ASSERT_EQ(create(cp, {}, out, size), Error::ok);
  // Canonical: a strict decode (sorted unique keys) accepts it.
  std::array<bencode::Token, 128> toks;
  bencode::Doc doc;
  ASSERT_EQ(bencode::decode(Bytes(out).first(size), toks, {}, doc), bencode::Error::ok);
  Parsed p;
  ASSERT_EQ(p.run(std::string(out.begin(), out.begin() + static_cast<long>(size))), Error::ok);
  EXPECT_EQ(p.m.name, "root");
  EXPECT_TRUE(p.m.is_private);
  EXPECT_EQ(p.m.total_length, 50000u);
  ASSERT_EQ(p.m.files.size(), 3u);
  char path[64];
  const size_t n = file_path(p.m, p.m.files[1], path);
  EXPECT_EQ(std::string_view(path, n), "dir/sub/b");
  EXPECT_EQ(std::string(p.m.pieces.begin(), p.m.pieces.end()), hashes);
  int tiers = 0;
  p.m.for_each_tracker([&](size_t tier, std::string_view) { tiers = static_cast<int>(tier) + 1; });
  EXPECT_EQ(tiers, 2);
  EXPECT_EQ(p.m.info_hash, sha1(p.m.info));
  // Too small a buffer: an error, not a short torrent.
  EXPECT_EQ(create(cp, {}, std::span<uint8_t>(out).first(100), size), Error::no_space);
}

TEST(MetainfoCreate, SingleFileAndErrors) {
  const std::array<FileSpec, 1> one = {{{"", 40000}}};
  const std::string hashes = pieces(2);
  CreateParams cp{.name = "a.bin", .piece_length = 32768, .files = one, .pieces = B(hashes)};
  std::array<uint8_t, 512> out{};
  size_t size = 0;
  ASSERT_EQ(create(cp, {}, out, size), Error::ok);
  // The same info dict as single_info(), so the same info-hash.
  Parsed p;
  ASSERT_EQ(p.run(std::string(out.begin(), out.begin() + static_cast<long>(size))), Error::ok);
  EXPECT_EQ(hex(p.m.info_hash), "f281ee1d61f87108125ea6cf7095e690f463057a");
  EXPECT_EQ(p.m.announce, "");

  CreateParams bad = cp;
  bad.name = "..";
  EXPECT_EQ(create(bad, {}, out, size), Error::bad_name);
  bad = cp;
  bad.piece_length = 1000;
  EXPECT_EQ(create(bad, {}, out, size), Error::bad_piece_length);
  bad = cp;
  bad.pieces = B(hashes).first(20);
  EXPECT_EQ(create(bad, {}, out, size), Error::piece_count);
  const std::array<FileSpec, 2> bad_paths = {{{"a//b", 1}, {"c", 1}}};
  bad = cp;
  bad.files = bad_paths;
  EXPECT_EQ(create(bad, {}, out, size), Error::bad_path);
  const std::array<FileSpec, 2> dotdot = {{{"a/../b", 1}, {"c", 1}}};
  bad.files = dotdot;
  EXPECT_EQ(create(bad, {}, out, size), Error::bad_path);
  bad.files = {};
  EXPECT_EQ(create(bad, {}, out, size), Error::bad_files);
}

}  // namespace
}  // namespace cw::swarm::meta
