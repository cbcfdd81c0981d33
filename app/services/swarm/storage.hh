// A torrent as the swarm service holds it: its metainfo (the file's bytes and what was parsed
// from them) and its files on disk, read and written as one byte stream (BEP 3: the files
// in order). Loading, opening and checking are setup (they allocate, do I/O and may fail);
// read_at/write_at/prefault are called only from the disk helper thread (disk.hh) once the
// worker runs. Blocks are sent from read-only shared mappings of the files: the helper
// prefaults a piece's pages (file I/O, maybe blocking), then the worker copies from them
// (copy_out: no syscall, no file I/O while the pages stay resident). The metainfo,
// descriptors and mappings are immutable after open().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "app/services/swarm/bencode.hh"
#include "app/services/swarm/metainfo.hh"
#include "dataplane/result.hh"

namespace cw::swarm {

inline constexpr size_t kMaxTorrentFile = size_t{16} << 20;  // bytes of one .torrent

class Torrent {
 public:
  Torrent() = default;
  Torrent(const Torrent&) = delete;
  Torrent& operator=(const Torrent&) = delete;
  ~Torrent();

  const meta::Metainfo& info() const { return m_; }
  const std::string& path() const { return path_; }

  // Opens (creating what is missing, directories included) every file under data_dir, laid
  // out as libtorrent does: data_dir/name for a single file, data_dir/name/path otherwise.
  Result<void> open(const std::string& data_dir);
  // Reads each piece and keeps the ones whose SHA-1 matches: sets bits (BEP 3 order, high
  // bit first, (piece_count + 7) / 8 bytes) and returns how many pieces are good.
  uint32_t check(std::vector<uint8_t>& bits) const;

  // The torrent's byte stream at off (all within total_length). False on a short read or an
  // I/O error (a missing or short file: the data is not there).
  bool read_at(uint64_t off, uint8_t* out, uint32_t len) const;
  bool write_at(uint64_t off, const uint8_t* in, uint32_t len) const;

  // Maps [off, off + len) of the stream's files into the process's page tables, reading
  // what is not in memory (MADV_POPULATE_READ). False when a page cannot be had (an I/O
  // error, or a file shorter than the torrent says: the access would be a SIGBUS).
  bool prefault(uint64_t off, uint32_t len) const;
  // Copies [off, off + len) of the stream to out from the mappings. Meant for a range that
  // prefault() accepted: a page that is no longer resident is read on the caller's thread.
  // False when the range passes the end, or a file was truncated under it since (the
  // SIGBUS of that access is caught; out then holds part of the range).
  bool copy_out(uint64_t off, uint32_t len, uint8_t* out) const;

 private:
  friend Result<std::unique_ptr<Torrent>> load_torrent(const std::string& path);
  // op(file index, offset in the file, offset in [off, off + len), bytes) over the files
  // holding [off, off + len); false if any op fails or the range passes the end.
  template <class Op>
  bool span_files(uint64_t off, uint32_t len, Op&& op) const;

  std::string path_;
  std::vector<uint8_t> blob_;  // the .torrent's bytes; m_ points into them
  std::vector<bencode::Token> toks_;
  std::vector<meta::FileEntry> files_;
  meta::Metainfo m_;
  std::vector<int> fds_;  // one per file, in torrent order
  // Per file: a read-only shared mapping of its torrent length (nullptr: an empty file).
  std::vector<const uint8_t*> maps_;
};

// Reads and parses a .torrent file; the error names the file and what is wrong.
Result<std::unique_ptr<Torrent>> load_torrent(const std::string& path);

// BEP 3 bitfield order: piece 0 is the high bit of byte 0.
inline bool bit(const uint8_t* bits, uint32_t i) {
  return (bits[i >> 3] & (0x80u >> (i & 7))) != 0;
}
inline void set_bit(uint8_t* bits, uint32_t i) {
  bits[i >> 3] = uint8_t(bits[i >> 3] | (0x80u >> (i & 7)));
}

}  // namespace cw::swarm
