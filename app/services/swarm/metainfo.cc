#include "app/services/swarm/metainfo.hh"

#include <cstring>
#include <iterator>

namespace cw::swarm::meta {
namespace {

using bencode::Doc;
using bencode::kNone;
using bencode::Type;

// A non-negative integer value of key in dict d, or -1 (absent, not an integer, negative).
int64_t uint_of(const Doc& doc, uint32_t d, std::string_view key) {
  const uint32_t v = doc.find(d, key);
  if (!doc.is(v, Type::integer)) return -1;
  return doc.at(v).value;
}

// BEP 12: a list of tiers, each a list of URL strings.
bool valid_announce_list(const Doc& doc, uint32_t l) {
  if (!doc.is(l, Type::list)) return false;
  uint32_t tier = l + 1;
  for (uint32_t t = 0; t < doc.at(l).count; ++t, tier = doc.next_item(tier)) {
    if (!doc.is(tier, Type::list)) return false;
    uint32_t url = tier + 1;
    for (uint32_t u = 0; u < doc.at(tier).count; ++u, url = doc.next_item(url)) {
      if (!doc.is(url, Type::string)) return false;
    }
  }
  return true;
}

// A "path" list: 1..max_components valid components, joined at most max_path_bytes.
bool valid_path(const Doc& doc, uint32_t p, const Limits& lim) {
  if (!doc.is(p, Type::list)) return false;
  const uint32_t n = doc.at(p).count;
  if (n == 0 || n > lim.max_components) return false;
  size_t bytes = n - 1;  // the separators
  uint32_t c = p + 1;
  for (uint32_t i = 0; i < n; ++i, c = doc.next_item(c)) {
    if (!doc.is(c, Type::string) || !valid_component(doc.str(c))) return false;
    bytes += doc.at(c).count;
  }
  return bytes <= lim.max_path_bytes;
}

// Each component of a '/'-separated path valid, within the limits.
bool valid_spec_path(std::string_view path, const Limits& lim) {
  if (path.size() > lim.max_path_bytes) return false;
  size_t components = 0;
  for (;;) {
    const size_t slash = path.find('/');
    if (!valid_component(path.substr(0, slash))) return false;
    if (++components > lim.max_components) return false;
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

Error check_piece_length(uint64_t len, const Limits& lim) {
  if (len < lim.min_piece_length || len > lim.max_piece_length || len % kBlockSize != 0) {
    return Error::bad_piece_length;
  }
  return Error::ok;
}

// ceil(total / piece_length) pieces, total in 1..max_total.
Error check_pieces(uint64_t total, uint32_t piece_length, size_t pieces, const Limits& lim) {
  if (total == 0 || total > lim.max_total) return Error::too_large;
  if (pieces > lim.max_pieces) return Error::bad_pieces;
  if ((total + piece_length - 1) / piece_length != pieces) return Error::piece_count;
  return Error::ok;
}

// Indexed by Error; the static_assert keeps it as long as the enum.
constexpr std::string_view kErrorNames[] = {
    "ok",       "bencode",          "not_dict",   "no_info",     "bad_announce",
    "bad_name", "bad_piece_length", "bad_pieces", "bad_length",  "bad_files",
    "bad_path", "too_many_files",   "too_large",  "piece_count", "no_space"};
static_assert(std::size(kErrorNames) == static_cast<size_t>(Error::kCount));

}  // namespace

std::string_view error_name(Error e) {
  const auto i = static_cast<size_t>(e);
  return i < std::size(kErrorNames) ? kErrorNames[i] : "?";
}

bool valid_component(std::string_view s) {
  if (s.empty() || s.size() > kMaxComponent || s == "." || s == "..") return false;
  return s.find('/') == std::string_view::npos && s.find('\0') == std::string_view::npos;
}

uint32_t Metainfo::piece_size(uint32_t i) const {
  const uint64_t start = uint64_t{i} * piece_length;
  const uint64_t left = total_length - start;
  return left < piece_length ? static_cast<uint32_t>(left) : piece_length;
}

std::array<char, 2 * kHashSize> to_hex(const Hash& h) {
  constexpr char kDigits[] = "0123456789abcdef";
  std::array<char, 2 * kHashSize> out;
  for (size_t i = 0; i < h.size(); ++i) {
    out[2 * i] = kDigits[h[i] >> 4];
    out[2 * i + 1] = kDigits[h[i] & 15];
  }
  return out;
}

Hash sha1(Bytes b) {
  Sha1 s;
  s.update(b);
  return s.digest();
}

Error parse(Bytes torrent, std::span<bencode::Token> toks, std::span<FileEntry> files,
            const Limits& lim, Metainfo& out) {
  out = Metainfo{};
  out.bencode_error = bencode::decode(torrent, toks, lim.bencode, out.doc);
  if (out.bencode_error != bencode::Error::ok) return Error::bencode;
  const Doc& doc = out.doc;
  if (!doc.is(0, Type::dict)) return Error::not_dict;

  if (const uint32_t a = doc.find(0, "announce"); a != kNone) {
    if (!doc.is(a, Type::string)) return Error::bad_announce;
    out.announce = doc.str(a);
  }
  if (const uint32_t l = doc.find(0, "announce-list"); l != kNone) {
    if (!valid_announce_list(doc, l)) return Error::bad_announce;
    out.announce_list = l;
  }

  const uint32_t info = doc.find(0, "info");
  if (info == kNone) return Error::no_info;
  if (!doc.is(info, Type::dict)) return Error::not_dict;
  out.info = doc.raw(info);
  out.info_hash = sha1(out.info);

  const uint32_t name = doc.find(info, "name");
  if (!doc.is(name, Type::string) || !valid_component(doc.str(name))) return Error::bad_name;
  out.name = doc.str(name);

  const int64_t plen = uint_of(doc, info, "piece length");
  if (plen < 0 || check_piece_length(static_cast<uint64_t>(plen), lim) != Error::ok) {
    return Error::bad_piece_length;
  }
  out.piece_length = static_cast<uint32_t>(plen);

  const uint32_t pieces = doc.find(info, "pieces");
  if (!doc.is(pieces, Type::string) || doc.at(pieces).count % kHashSize != 0) {
    return Error::bad_pieces;
  }
  out.pieces = doc.buf.subspan(static_cast<size_t>(doc.at(pieces).value), doc.at(pieces).count);
  out.piece_count = static_cast<uint32_t>(doc.at(pieces).count / kHashSize);

  if (const uint32_t p = doc.find(info, "private"); doc.is(p, Type::integer)) {
    out.is_private = doc.at(p).value == 1;
  }

  const uint32_t length = doc.find(info, "length");
  const uint32_t list = doc.find(info, "files");
  if ((length == kNone) == (list == kNone)) return Error::bad_length;
  uint64_t total = 0;
  size_t n = 0;
  if (length != kNone) {
    if (!doc.is(length, Type::integer) || doc.at(length).value < 0) return Error::bad_length;
    if (files.empty()) return Error::too_many_files;
    total = static_cast<uint64_t>(doc.at(length).value);
    if (total > lim.max_total) return Error::too_large;
    files[n++] = FileEntry{total, 0, kNone};
  } else {
    if (!doc.is(list, Type::list) || doc.at(list).count == 0) return Error::bad_files;
    out.multi_file = true;
    uint32_t f = list + 1;
    for (uint32_t i = 0; i < doc.at(list).count; ++i, f = doc.next_item(f)) {
      if (!doc.is(f, Type::dict)) return Error::bad_files;
      const int64_t len = uint_of(doc, f, "length");
      const uint32_t path = doc.find(f, "path");
      if (len < 0 || path == kNone) return Error::bad_files;
      if (!valid_path(doc, path, lim)) return Error::bad_path;
      if (n == files.size()) return Error::too_many_files;
      // Each length and the running total stay <= max_total (< 2^63): no overflow.
      if (static_cast<uint64_t>(len) > lim.max_total - total) return Error::too_large;
      files[n++] = FileEntry{static_cast<uint64_t>(len), total, path};
      total += static_cast<uint64_t>(len);
    }
  }
  if (const Error e = check_pieces(total, out.piece_length, out.piece_count, lim); e != Error::ok) {
    return e;
  }
  out.total_length = total;
  out.files = files.first(n);
  return Error::ok;
}

size_t file_path(const Metainfo& m, const FileEntry& f, std::span<char> out) {
  size_t n = 0;
  const auto put = [&](std::string_view s) {
    if (out.size() - n < s.size()) return false;
    std::memcpy(out.data() + n, s.data(), s.size());
    n += s.size();
    return true;
  };
  if (f.path == kNone) return put(m.name) ? n : 0;
  const Doc& doc = m.doc;
  uint32_t c = f.path + 1;
  for (uint32_t i = 0; i < doc.at(f.path).count; ++i, c = doc.next_item(c)) {
    if ((i > 0 && !put("/")) || !put(doc.str(c))) return 0;
  }
  return n;
}

bool PieceHasher::emit() {
  if (out_.size() / kHashSize == n_) return false;
  const Hash h = sha_.digest();
  std::memcpy(out_.data() + n_ * kHashSize, h.data(), kHashSize);
  ++n_;
  fill_ = 0;
  return true;
}

bool PieceHasher::feed(Bytes data) {
  while (!data.empty()) {
    const size_t take = std::min<size_t>(len_ - fill_, data.size());
    sha_.update(data.first(take));
    fill_ += static_cast<uint32_t>(take);
    data = data.subspan(take);
    if (fill_ == len_ && !emit()) return false;
  }
  return true;
}

bool PieceHasher::finish() {
  return fill_ == 0 || emit();
}

Error create(const CreateParams& p, const Limits& lim, std::span<uint8_t> out, size_t& size) {
  size = 0;
  if (!valid_component(p.name)) return Error::bad_name;
  if (const Error e = check_piece_length(p.piece_length, lim); e != Error::ok) return e;
  if (p.pieces.size() % kHashSize != 0) return Error::bad_pieces;
  if (p.files.empty()) return Error::bad_files;
  const bool single = p.files.size() == 1 && p.files[0].path.empty();
  uint64_t total = 0;
  for (const FileSpec& f : p.files) {
    if (!single && !valid_spec_path(f.path, lim)) return Error::bad_path;
    if (f.length > lim.max_total - total) return Error::too_large;
    total += f.length;
  }
  if (const Error e = check_pieces(total, p.piece_length, p.pieces.size() / kHashSize, lim);
      e != Error::ok) {
    return e;
  }

  // Keys in ascending byte order, as BEP 3 requires of a canonical encoding.
  bencode::Writer w(out);
  w.dict();
  if (!p.trackers.empty()) w.string("announce").string(p.trackers[0]);
  if (p.trackers.size() > 1) {
    w.string("announce-list").list();
    for (const std::string_view t : p.trackers) w.list().string(t).end();
    w.end();
  }
  if (!p.created_by.empty()) w.string("created by").string(p.created_by);
  if (p.creation_date != 0) w.string("creation date").integer(p.creation_date);
  w.string("info").dict();
  if (single) {
    w.string("length").integer(static_cast<int64_t>(total));
  } else {
    w.string("files").list();
    for (const FileSpec& f : p.files) {
      w.dict().string("length").integer(static_cast<int64_t>(f.length)).string("path").list();
      std::string_view path = f.path;
      for (size_t slash; (slash = path.find('/')) != std::string_view::npos;) {
        w.string(path.substr(0, slash));
        path.remove_prefix(slash + 1);
      }
      w.string(path).end().end();
    }
    w.end();
  }
  w.string("name").string(p.name);
  w.string("piece length").integer(p.piece_length);
  w.string("pieces").string(p.pieces);
  if (p.is_private) w.string("private").integer(1);
  w.end().end();
  if (!w.ok()) return Error::no_space;
  size = w.size();
  return Error::ok;
}

}  // namespace cw::swarm::meta
