// libFuzzer target: metainfo (app/services/swarm/metainfo.hh). An accepted torrent's files
// tile its byte stream, its pieces cover it exactly, its info-hash is SHA-1 of its info
// bytes, and every file path is valid components; written again by create() from what was
// parsed, it parses back to the same names, sizes and pieces.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "app/services/swarm/metainfo.hh"
#include "tests/fuzz/swarm_fuzz_check.hh"

namespace mi = cw::swarm::meta;

namespace {

constexpr size_t kFiles = 64;
constexpr size_t kPath = 512;

mi::Limits limits() {
  mi::Limits lim;
  lim.max_path_bytes = kPath;
  lim.max_pieces = 4096;
  return lim;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::array<cw::swarm::bencode::Token, 2048> toks;
  static std::array<mi::FileEntry, kFiles> files;
  static std::array<std::array<char, kPath>, kFiles> paths;
  const mi::Limits lim = limits();
  mi::Metainfo m;
  if (mi::parse(mi::Bytes(data, size), toks, files, lim, m) != mi::Error::ok) return 0;
  SWARM_CHECK(m.info_hash == mi::sha1(m.info));
  SWARM_CHECK(m.info.data() >= data && m.info.data() + m.info.size() <= data + size);
  SWARM_CHECK(m.pieces.size() == size_t{m.piece_count} * mi::kHashSize);
  SWARM_CHECK(m.piece_count > 0 && m.piece_length % mi::kBlockSize == 0);
  uint64_t in_pieces = 0;
  for (uint32_t i = 0; i < m.piece_count; ++i) in_pieces += m.piece_size(i);
  SWARM_CHECK(in_pieces == m.total_length);
  SWARM_CHECK(mi::valid_component(m.name));
  m.for_each_tracker([](size_t, std::string_view) {});

  std::array<mi::FileSpec, kFiles> specs;
  uint64_t at = 0;
  for (size_t i = 0; i < m.files.size(); ++i) {
    const mi::FileEntry& f = m.files[i];
    SWARM_CHECK(f.offset == at);
    at += f.length;
    const size_t n = mi::file_path(m, f, paths[i]);
    SWARM_CHECK(n > 0 && n <= kPath);
    const std::string_view path(paths[i].data(), n);
    // Single file: its path is the name; create() takes it as an empty path.
    specs[i] = {m.multi_file ? path : std::string_view{}, f.length};
  }
  SWARM_CHECK(at == m.total_length);

  // Written again: the same files and pieces. A multi-file torrent of one file stays
  // multi-file, as its path is not empty.
  const std::string_view tracker[] = {m.announce};
  const mi::CreateParams cp{.trackers = std::span(tracker, m.announce.empty() ? 0 : 1),
                            .name = m.name,
                            .piece_length = m.piece_length,
                            .files = std::span(specs).first(m.files.size()),
                            .pieces = m.pieces,
                            .is_private = m.is_private};
  std::vector<uint8_t> out(size + 64 * kFiles + 256);
  size_t n = 0;
  SWARM_CHECK(mi::create(cp, lim, out, n) == mi::Error::ok);
  static std::array<cw::swarm::bencode::Token, 2048> toks2;
  static std::array<mi::FileEntry, kFiles> files2;
  mi::Metainfo m2;
  SWARM_CHECK(mi::parse(mi::Bytes(out).first(n), toks2, files2, lim, m2) == mi::Error::ok);
  SWARM_CHECK(m2.name == m.name && m2.total_length == m.total_length);
  SWARM_CHECK(m2.files.size() == m.files.size() && m2.multi_file == m.multi_file);
  SWARM_CHECK(m2.piece_count == m.piece_count && m2.is_private == m.is_private);
  SWARM_CHECK(std::equal(m2.pieces.begin(), m2.pieces.end(), m.pieces.begin()));
  return 0;
}
