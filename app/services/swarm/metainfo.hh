// Metainfo (.torrent, BEP 3 v1; BEP 12 announce-list): parsing with every limit checked, the
// info-hash, and a writer. Pure: no I/O, no globals, no allocation (the caller gives the
// token and file arrays). A parsed Metainfo points into the input, which must outlive it.
// SHA-1 is nettle's. Limits and rules: docs/swarm.md.
#pragma once

#include <nettle/sha1.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "app/services/swarm/bencode.hh"

namespace cw::swarm::meta {

using Bytes = std::span<const uint8_t>;
inline constexpr size_t kHashSize = 20;  // SHA-1
using Hash = std::array<uint8_t, kHashSize>;
inline constexpr uint32_t kBlockSize = 16 * 1024;  // the unit of a request (BEP 3 practice)
inline constexpr size_t kMaxComponent = 255;       // bytes in one path component (NAME_MAX)

struct Limits {
  bencode::Limits bencode{.max_depth = 32, .max_string = size_t{1} << 26, .strict = false};
  uint64_t max_total = uint64_t{1} << 42;  // bytes in all files (4 TiB)
  // A piece is a whole number of 16 KiB blocks, at most 64 MiB (libtorrent's ceiling too).
  uint32_t min_piece_length = kBlockSize;
  uint32_t max_piece_length = 64u << 20;
  size_t max_pieces = size_t{1} << 22;
  size_t max_components = 64;    // path components in one file's path
  size_t max_path_bytes = 4096;  // one file's path, components joined by '/'
};

enum class Error : uint8_t {
  ok,
  bencode,           // not a valid bencoded element (see bencode_error)
  not_dict,          // the root or "info" is not a dict
  no_info,           // no "info"
  bad_announce,      // "announce" not a string, or "announce-list" not a list of lists of strings
  bad_name,          // "name" missing or not a valid path component
  bad_piece_length,  // missing, out of the limits, or not a multiple of 16 KiB
  bad_pieces,        // missing, not a string, length not a multiple of 20, too many
  bad_length,        // neither or both of "length" and "files", or a length < 0
  bad_files,         // "files" empty, not a list of dicts with "length" and "path"
  bad_path,          // a path empty, with an empty, ".", ".." or '/'-holding component
  too_many_files,    // more files than the FileEntry span holds
  too_large,         // total size beyond Limits::max_total, or zero
  piece_count,       // the number of pieces is not ceil(total / piece length)
  no_space,          // create(): the output buffer is too small
  kCount,
};
std::string_view error_name(Error e);

// One file of the torrent, in torrent order. Files tile the torrent's byte stream: each
// starts where the one before it ends.
struct FileEntry {
  uint64_t length = 0;
  uint64_t offset = 0;             // in the torrent's byte stream
  uint32_t path = bencode::kNone;  // token of its "path" list; kNone for a single file
};

struct Metainfo {
  bencode::Doc doc;
  bencode::Error bencode_error = bencode::Error::ok;
  std::string_view announce;                // empty if absent
  uint32_t announce_list = bencode::kNone;  // token of "announce-list" (list of tiers)
  std::string_view name{};
  uint32_t piece_length = 0;
  uint32_t piece_count = 0;
  Bytes pieces;  // piece_count SHA-1 hashes
  uint64_t total_length = 0;
  bool multi_file = false;
  bool is_private = false;
  std::span<const FileEntry> files;
  Bytes info;  // the exact bytes of the info dict
  Hash info_hash{};

  Bytes piece_hash(uint32_t i) const { return pieces.subspan(size_t{i} * kHashSize, kHashSize); }
  // Bytes in piece i: piece_length, except the last.
  uint32_t piece_size(uint32_t i) const;
  // Calls f(tier, url) for each tracker: the announce-list (BEP 12) if not empty, else announce.
  template <class F>
  void for_each_tracker(F&& f) const;
};

Error parse(Bytes torrent, std::span<bencode::Token> toks, std::span<FileEntry> files,
            const Limits& lim, Metainfo& out);

// Writes a file's path relative to the torrent's root ("name" for a single file, the "path"
// components joined by '/' for a multi-file one) into out; returns its length, or 0 if out is
// too small.
size_t file_path(const Metainfo& m, const FileEntry& f, std::span<char> out);

// True if s may be a path component: 1..kMaxComponent bytes, not "." or "..", no '/' or NUL.
bool valid_component(std::string_view s);

// SHA-1 over nettle.
class Sha1 {
 public:
  Sha1() { sha1_init(&ctx_); }
  void update(Bytes b) { sha1_update(&ctx_, b.size(), b.data()); }
  Hash digest() {
    Hash h;
    sha1_digest(&ctx_, h.size(), h.data());  // also resets the context
    return h;
  }

 private:
  sha1_ctx ctx_;
};
Hash sha1(Bytes b);
// The 40 lowercase hex digits of a hash (how info-hashes are shown: magnet links, logs).
std::array<char, 2 * kHashSize> to_hex(const Hash& h);

// Hashes a torrent's byte stream (its files, in order) into piece hashes, written into the
// caller's span (20 bytes per piece).
class PieceHasher {
 public:
  PieceHasher(uint32_t piece_length, std::span<uint8_t> out) : len_(piece_length), out_(out) {}
  bool feed(Bytes data);  // false once out is full and more data comes
  bool finish();          // hashes the last, shorter piece; false if out is full
  size_t pieces() const { return n_; }
  Bytes hashes() const { return out_.first(n_ * kHashSize); }

 private:
  bool emit();
  Sha1 sha_;
  uint32_t len_;
  uint32_t fill_ = 0;  // bytes of the current piece hashed so far
  std::span<uint8_t> out_;
  size_t n_ = 0;
};

// What the writer needs: the files (paths relative to the root, '/' between components; one
// file with an empty path makes a single-file torrent named `name`) and their piece hashes.
struct FileSpec {
  std::string_view path{};
  uint64_t length = 0;
};
struct CreateParams {
  std::span<const std::string_view> trackers{};  // first in "announce"; more: one tier each
  std::string_view name{};
  uint32_t piece_length = 256 * 1024;
  std::span<const FileSpec> files{};
  Bytes pieces{};  // from PieceHasher
  bool is_private = false;
  std::string_view created_by{};  // omitted if empty
  int64_t creation_date = 0;      // Unix seconds; omitted if 0
};
// Writes a canonical metainfo (sorted keys) into out; size gets its length. Checks the same
// limits parse() does, so what it writes parses back.
Error create(const CreateParams& p, const Limits& lim, std::span<uint8_t> out, size_t& size);

template <class F>
void Metainfo::for_each_tracker(F&& f) const {
  // An empty announce-list falls back to announce, as libtorrent does.
  if (announce_list == bencode::kNone || doc.at(announce_list).count == 0) {
    if (!announce.empty()) f(size_t{0}, announce);
    return;
  }
  uint32_t tier = announce_list + 1;
  for (size_t t = 0; t < doc.at(announce_list).count; ++t, tier = doc.next_item(tier)) {
    uint32_t url = tier + 1;
    for (size_t u = 0; u < doc.at(tier).count; ++u, url = doc.next_item(url)) f(t, doc.str(url));
  }
}

}  // namespace cw::swarm::meta
