// A test helper around the metainfo codec, for the libtorrent interop test:
//   torrent_tool show FILE.torrent            prints the info-hash and what was parsed
//   torrent_tool create PATH OUT PIECE_LEN [TRACKER]
//                                             writes a .torrent of a file or a directory
// File I/O and allocation are fine here: this is the test side, not the service.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "app/services/swarm/metainfo.hh"

namespace fs = std::filesystem;
namespace mi = cw::swarm::meta;

namespace {

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

int show(const char* path) {
  const std::vector<uint8_t> buf = read_file(path);
  std::vector<cw::swarm::bencode::Token> toks(1 << 20);
  std::vector<mi::FileEntry> files(1 << 16);
  mi::Metainfo m;
  const mi::Error e = mi::parse(buf, toks, files, {}, m);
  if (e != mi::Error::ok) {
    std::fprintf(stderr, "torrent_tool: %s: %s (bencode: %s)\n", path,
                 std::string(mi::error_name(e)).c_str(),
                 std::string(cw::swarm::bencode::error_name(m.bencode_error)).c_str());
    return 1;
  }
  const auto hex = mi::to_hex(m.info_hash);
  std::printf("info_hash %.40s\nname %.*s\ntotal %llu\npieces %u\npiece_length %u\nnfiles %zu\n",
              hex.data(), static_cast<int>(m.name.size()), m.name.data(),
              static_cast<unsigned long long>(m.total_length), m.piece_count, m.piece_length,
              m.files.size());
  char p[8192];
  for (const mi::FileEntry& f : m.files) {
    const size_t n = mi::file_path(m, f, p);
    std::printf("file %llu %.*s\n", static_cast<unsigned long long>(f.length), static_cast<int>(n),
                p);
  }
  return 0;
}

int create(const char* root, const char* out, uint32_t piece_length, const char* tracker) {
  const fs::path base(root);
  std::vector<fs::path> paths;
  std::vector<std::string> rel;
  if (fs::is_directory(base)) {
    for (const auto& e : fs::recursive_directory_iterator(base)) {
      if (e.is_regular_file()) paths.push_back(e.path());
    }
    std::sort(paths.begin(), paths.end());
    for (const fs::path& p : paths) rel.push_back(fs::relative(p, base).generic_string());
  } else {
    paths.push_back(base);
    rel.emplace_back();
  }
  std::vector<mi::FileSpec> specs;
  uint64_t total = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    specs.push_back({rel[i], fs::file_size(paths[i])});
    total += specs.back().length;
  }
  std::vector<uint8_t> hashes((total / piece_length + 1) * mi::kHashSize);
  mi::PieceHasher h(piece_length, hashes);
  for (const fs::path& p : paths) {
    if (!h.feed(read_file(p))) return 1;
  }
  if (!h.finish()) return 1;
  const std::string name = base.filename().string();
  const std::string_view trackers[] = {tracker != nullptr ? tracker : ""};
  const mi::CreateParams cp{.trackers = std::span(trackers, tracker != nullptr ? 1 : 0),
                            .name = name,
                            .piece_length = piece_length,
                            .files = specs,
                            .pieces = h.hashes(),
                            .created_by = "corewire"};
  std::vector<uint8_t> buf(h.hashes().size() + specs.size() * 8192 + 4096);
  size_t n = 0;
  const mi::Error e = mi::create(cp, {}, buf, n);
  if (e != mi::Error::ok) {
    std::fprintf(stderr, "torrent_tool: create: %s\n", std::string(mi::error_name(e)).c_str());
    return 1;
  }
  std::ofstream(out, std::ios::binary)
      .write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "show" && argc == 3) return show(argv[2]);
  if (cmd == "create" && (argc == 5 || argc == 6)) {
    return create(argv[2], argv[3], static_cast<uint32_t>(std::stoul(argv[4])),
                  argc == 6 ? argv[5] : nullptr);
  }
  std::fprintf(stderr, "usage: torrent_tool show FILE | create PATH OUT PIECE_LEN [TRACKER]\n");
  return 2;
}
