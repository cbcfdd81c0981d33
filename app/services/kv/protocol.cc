#include "app/services/kv/protocol.hh"

#include <cstring>

namespace cw::kv::proto {
namespace {

// memcached's reply strings, byte for byte (proto_text.c of 1.6.18 and later).
constexpr std::string_view kError = "ERROR";
constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format";
constexpr std::string_view kBadChunk = "CLIENT_ERROR bad data chunk";
constexpr std::string_view kTooLarge = "SERVER_ERROR object too large for cache";
constexpr std::string_view kBadExptime = "CLIENT_ERROR invalid exptime argument";
constexpr std::string_view kBadDelta = "CLIENT_ERROR invalid numeric delta argument";
constexpr std::string_view kDeleteUsage =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
constexpr std::string_view kMgTooLong = "CLIENT_ERROR options flags are too long";
constexpr std::string_view kMetaTooLong = "CLIENT_ERROR options flags too long";
constexpr std::string_view kDupFlag = "CLIENT_ERROR duplicate flag";
constexpr std::string_view kInvalidFlag = "CLIENT_ERROR invalid flag";
constexpr std::string_view kInvalidOrDup = "CLIENT_ERROR invalid or duplicate flag";
constexpr std::string_view kBadKeyDecode = "CLIENT_ERROR error decoding key";
constexpr std::string_view kBadToken = "CLIENT_ERROR bad token in command line format";
constexpr std::string_view kMLength = "CLIENT_ERROR incorrect length for M token";
constexpr std::string_view kBadInitial = "CLIENT_ERROR invalid numeric initial value";
constexpr std::string_view kBadDeltaValue = "CLIENT_ERROR invalid numeric delta value";
constexpr std::string_view kOpaqueTooLong = "CLIENT_ERROR opaque token too long";
constexpr std::string_view kMsMode = "CLIENT_ERROR invalid mode for ms M token";
constexpr std::string_view kMaMode = "CLIENT_ERROR invalid mode for ma M token";

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

bool parse_u32(std::string_view s, uint32_t& out) {
  uint64_t v = 0;
  if (!parse_u64(s, v) || v > UINT32_MAX) return false;
  out = uint32_t(v);
  return true;
}

bool parse_i64(std::string_view s, int64_t& out) {
  const bool neg = !s.empty() && s[0] == '-';
  uint64_t v = 0;
  if (!parse_u64(neg ? s.substr(1) : s, v)) return false;
  if (v > uint64_t(INT64_MAX) + (neg ? 1 : 0)) return false;
  out = neg ? int64_t(0 - v) : int64_t(v);
  return true;
}

// As memcached's tokenizer: a key is any bytes but the separator and the line's end. NUL
// is refused too (memcached would cut the key there: the same bytes would name another
// key). Other control bytes are key bytes there, and clients use them (memcaslap's keys
// start with eight 0x10 bytes).
bool bad_key_byte(char c) {
  return c == ' ' || c == '\r' || c == '\n' || c == '\0';
}

bool bad_key(std::string_view k) {
  if (k.size() > kMaxKeyLen) return true;
  for (char c : k)
    if (bad_key_byte(c)) return true;
  return false;
}

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

// memcached keeps reading a line without a newline past 2048 bytes only when it begins,
// after at most 100 spaces, with "get " or "gets " (we add gat and gats).
bool get_family_line(std::string_view in) {
  size_t i = 0;
  while (i < in.size() && i <= 100 && in[i] == ' ') ++i;
  if (i > 100) return false;
  const std::string_view s = in.substr(i);
  return starts_with(s, "get ") || starts_with(s, "gets ") || starts_with(s, "gat ") ||
         starts_with(s, "gats ");
}

// The first kMaxTokens space-separated tokens of a line, as memcached's tokenize_command
// sees them (only ' ' separates; tabs and other bytes belong to tokens).
struct Tokens {
  std::array<std::string_view, kMaxTokens> t;
  size_t n = 0;
  size_t pos = 0;  // where tokenizing stopped
  std::string_view line;
  explicit Tokens(std::string_view l) : line(l) {}
  // Splits until `max` tokens are known (a get needs two, the rest up to kMaxTokens).
  void split(size_t max) {
    while (n < max) {
      while (pos < line.size() && line[pos] == ' ') ++pos;
      if (pos == line.size()) return;
      const size_t start = pos;
      while (pos < line.size() && line[pos] != ' ') ++pos;
      t[n++] = line.substr(start, pos - start);
    }
  }
  // The line from token i on (empty when i == n).
  std::string_view from(size_t i) const {
    if (i >= n) return {};
    return line.substr(size_t(t[i].data() - line.data()));
  }
  std::string_view last() const { return t[n - 1]; }
};

// The helpers fill the caller's Parsed in place, so parse() returns one object (NRVO).
Parsed& fail(Parsed& p, std::string_view reply, size_t consumed, bool noreply = false) {
  p.status = Status::error;
  p.reply = reply;
  p.consumed = consumed;
  p.noreply = noreply;
  return p;
}

Parsed& close_now(Parsed& p) {
  p.status = Status::error;
  p.close = true;
  return p;
}

Parsed& need(Parsed& p, size_t total) {
  p.need = total;
  return p;
}

// The value block after a storage line: `vlen` bytes and "\r\n" at in[line_len].
// noreply applies to text errors only; memcached always answers ms errors.
Parsed& data_block(Parsed& p, std::string_view in, size_t line_len, uint64_t vlen,
                   const Limits& limits, bool noreply) {
  const size_t total = line_len + size_t(vlen) + 2;
  if (vlen > limits.max_value) return fail(p, kTooLarge, total, noreply);
  if (in.size() < total) return need(p, total);
  if (in[total - 2] != '\r' || in[total - 1] != '\n') return fail(p, kBadChunk, total, noreply);
  p.req.data = in.substr(line_len, size_t(vlen));
  p.status = Status::ok;
  p.consumed = total;
  return p;
}

Parsed& parse_get(Parsed& p, const Tokens& tk, size_t line_len, Cmd cmd) {
  if (tk.n < 2) return fail(p, kError, line_len);
  size_t first = 1;
  if (cmd == Cmd::gat || cmd == Cmd::gats) {
    if (!parse_i64(tk.t[1], p.req.exptime)) return fail(p, kBadExptime, line_len);
    first = 2;
  }
  const std::string_view text = tk.from(first);
  // One pass: count the keys and check their length and bytes.
  uint32_t count = 0;
  size_t len = 0;  // of the key being read
  for (char ch : text) {
    if (ch == ' ') {
      len = 0;
      continue;
    }
    if (bad_key_byte(ch) || ++len > kMaxKeyLen || (len == 1 && ++count > kMaxGetKeys))
      return fail(p, kBadFormat, line_len);
  }
  p.req.cmd = cmd;
  p.req.keys = KeyList(text, count);
  p.status = Status::ok;
  p.consumed = line_len;
  return p;
}

Parsed& parse_storage(Parsed& p, std::string_view in, const Tokens& tk, size_t line_len, Cmd cmd,
                      const Limits& limits) {
  const bool is_cas = cmd == Cmd::cas;
  const size_t want = is_cas ? 6 : 5;
  if (tk.n != want && tk.n != want + 1) return fail(p, kError, line_len);
  const bool noreply = tk.last() == "noreply";
  Request& r = p.req;
  r.cmd = cmd;
  r.noreply = noreply;
  r.key = tk.t[1];
  int64_t vlen = 0;
  if (bad_key(r.key) || !parse_u32(tk.t[2], r.client_flags) || !parse_i64(tk.t[3], r.exptime) ||
      !parse_i64(tk.t[4], vlen) || (is_cas && !parse_u64(tk.t[5], r.cas)) || vlen < 0 ||
      vlen > int64_t(kMaxDataLen))
    return fail(p, kBadFormat, line_len, noreply);
  return data_block(p, in, line_len, uint64_t(vlen), limits, noreply);
}

Parsed& parse_text(Parsed& p, const Tokens& tk, size_t line_len) {
  Request& r = p.req;
  const std::string_view c = tk.t[0];
  const bool noreply = tk.n >= 2 && tk.last() == "noreply";
  const auto ok = [&](Cmd cmd) -> Parsed& {
    r.cmd = cmd;
    r.noreply = noreply;
    p.status = Status::ok;
    p.consumed = line_len;
    return p;
  };
  if (c == "incr" || c == "decr") {
    if (tk.n != 3 && tk.n != 4) return fail(p, kError, line_len);
    r.key = tk.t[1];
    if (bad_key(r.key)) return fail(p, kBadFormat, line_len, noreply);
    if (!parse_u64(tk.t[2], r.delta)) return fail(p, kBadDelta, line_len, noreply);
    return ok(c == "incr" ? Cmd::incr : Cmd::decr);
  }
  if (c == "delete") {
    if (tk.n < 2 || tk.n > 4) return fail(p, kError, line_len);
    r.key = tk.t[1];
    if (tk.n > 2) {
      // memcached still accepts the old "delete <key> 0" hold time.
      const bool zero = tk.t[2] == "0";
      if (!((tk.n == 3 && (zero || noreply)) || (tk.n == 4 && zero && noreply)))
        return fail(p, kDeleteUsage, line_len, noreply);
    }
    if (bad_key(r.key)) return fail(p, kBadFormat, line_len, tk.n > 2 && noreply);
    r.cmd = Cmd::del;
    r.noreply = tk.n > 2 && noreply;
    p.status = Status::ok;
    p.consumed = line_len;
    return p;
  }
  if (c == "touch") {
    if (tk.n != 3 && tk.n != 4) return fail(p, kError, line_len);
    r.key = tk.t[1];
    if (bad_key(r.key)) return fail(p, kBadFormat, line_len, noreply);
    if (!parse_i64(tk.t[2], r.exptime)) return fail(p, kBadExptime, line_len, noreply);
    return ok(Cmd::touch);
  }
  if (c == "flush_all") {
    if (tk.n > 3) return fail(p, kError, line_len);
    if (tk.n != (noreply ? 2u : 1u) && !parse_i64(tk.t[1], r.exptime))
      return fail(p, kBadExptime, line_len, noreply);
    return ok(Cmd::flush_all);
  }
  if (c == "verbosity") {
    if (tk.n != 2 && tk.n != 3) return fail(p, kError, line_len);
    if (!parse_u32(tk.t[1], r.verbosity)) return fail(p, kBadFormat, line_len, noreply);
    return ok(Cmd::verbosity);
  }
  if (c == "version") return ok(Cmd::version);
  if (c == "quit") return ok(Cmd::quit);
  if (c == "stats") {
    std::string_view a = tk.from(1);
    while (!a.empty() && a.back() == ' ') a.remove_suffix(1);
    r.args = a;
    r.cmd = Cmd::stats;
    p.status = Status::ok;
    p.consumed = line_len;
    return p;
  }
  // memcached closes on an unknown command whose last token starts with "HTTP/" (a web
  // request on the port); it dispatches on the first letter first, so only commands that
  // do not start like one of its own get this.
  const char f = c[0];
  const bool known_letter = f == 'g' || f == 's' || f == 'a' || f == 'c' || f == 'i' || f == 'd' ||
                            f == 't' || f == 'm' || c == "lru_crawler" || c == "watch" ||
                            c == "lru";
  if (!known_letter && starts_with(tk.last(), "HTTP/")) return close_now(p);
  return fail(p, kError, line_len);
}

// memcached's _meta_flag_preparse: every known flag is accepted by every meta command; an
// unknown or repeated letter stops at once, a bad argument is noted and the scan goes on
// (the last message wins; F sets none).
bool meta_flags(Request& r, const Tokens& tk, size_t first, std::string_view& err) {
  static constexpr std::string_view kPlainFlags = "IPLcfhklqstuvx";
  MetaFlags& m = r.meta;
  bool failed = false;
  for (size_t i = first; i < tk.n; ++i) {
    const std::string_view t = tk.t[i];
    const char o = t[0];
    const std::string_view arg = t.substr(1);
    if (uint8_t(o) >= 127 || m.has(o)) {
      err = kDupFlag;
      return false;
    }
    bool ok = true;
    switch (o) {
      case 'b':
        r.binary_key_len = uint8_t(base64_decode(r.key, r.binary_key));
        if (r.binary_key_len == 0) {
          err = kBadKeyDecode;
          ok = false;
        }
        break;
      case 'N':
        if (!parse_i64(arg, m.vivify_ttl)) ok = false, err = kBadToken;
        break;
      case 'T':
        if (!parse_i64(arg, m.ttl)) ok = false, err = kBadToken;
        break;
      case 'R':
        if (!parse_i64(arg, m.recache_ttl)) ok = false, err = kBadToken;
        break;
      case 'O':
        m.opaque = arg;
        break;
      case 'F':
        ok = parse_u32(arg, m.client_flags);
        break;
      case 'C':
        if (!parse_u64(arg, m.compare_cas)) ok = false, err = kBadToken;
        break;
      case 'E':
        if (!parse_u64(arg, m.explicit_cas)) ok = false, err = kBadToken;
        break;
      case 'M':
        if (t.size() != 2)
          ok = false, err = kMLength;
        else
          m.mode = t[1];
        break;
      case 'J':
        if (!parse_u64(arg, m.initial)) ok = false, err = kBadInitial;
        break;
      case 'D':
        if (!parse_u64(arg, m.delta)) ok = false, err = kBadDeltaValue;
        break;
      default:  // flags without an argument to check, or unknown
        if (kPlainFlags.find(o) == std::string_view::npos) {
          err = kInvalidFlag;
          return false;
        }
    }
    m.mask |= uint64_t(1) << unsigned(o - 'A');
    m.order[m.count++] = o;
    failed = failed || !ok;  // keep scanning, as memcached does
  }
  return !failed;
}

Parsed& parse_meta(Parsed& p, std::string_view in, const Tokens& tk, size_t line_len,
                   const Limits& limits) {
  Request& r = p.req;
  const char c = tk.t[0][1];
  if (c == 'n') {
    r.cmd = Cmd::mn;
    p.status = Status::ok;
    p.consumed = line_len;
    return p;
  }
  if (c != 'g' && c != 's' && c != 'd' && c != 'a' && c != 'e') return fail(p, kError, line_len);
  if (tk.n < 2) return fail(p, c == 'e' ? kBadFormat : kError, line_len);
  r.key = tk.t[1];
  if (bad_key(r.key)) return fail(p, kBadFormat, line_len);
  if (c == 'e') {
    r.cmd = Cmd::me;
    if (tk.n >= 3 && tk.t[2] == "b") {
      r.binary_key_len = uint8_t(base64_decode(r.key, r.binary_key));
      if (r.binary_key_len == 0) return fail(p, kBadFormat, line_len);
      r.meta.mask |= uint64_t(1) << unsigned('b' - 'A');
    }
    p.status = Status::ok;
    p.consumed = line_len;
    return p;
  }
  if (c == 's' && tk.n == 2) return fail(p, kBadFormat, line_len);
  if (tk.n > kMaxMetaTokens) return fail(p, c == 'g' ? kMgTooLong : kMetaTooLong, line_len);

  // ms: the data length comes first so that a refused ms can still swallow its value.
  size_t swallow = line_len;
  size_t first_flag = 2;
  int64_t vlen = 0;
  if (c == 's') {
    if (!parse_i64(tk.t[2], vlen) || vlen < 0 || vlen > int64_t(kMaxDataLen))
      return fail(p, kBadFormat, line_len);
    swallow = line_len + size_t(vlen) + 2;
    first_flag = 3;
  }
  std::string_view err = kBadFormat;
  if (!meta_flags(r, tk, first_flag, err))
    return fail(p, c == 'd' || c == 'a' ? kInvalidOrDup : err, swallow);
  const MetaFlags& m = r.meta;
  if (m.has('O') && m.opaque.size() + 1 > kMaxOpaqueLen) return fail(p, kOpaqueTooLong, swallow);
  r.noreply = m.has('q');
  switch (c) {
    case 'g':
      r.cmd = Cmd::mg;
      break;
    case 'd':
      r.cmd = Cmd::md;
      break;
    case 'a':
      r.cmd = Cmd::ma;
      if (m.mode != 0 && m.mode != 'I' && m.mode != '+' && m.mode != 'D' && m.mode != '-')
        return fail(p, kMaMode, line_len);
      break;
    default:  // 's'
      r.cmd = Cmd::ms;
      if (m.mode != 0 && m.mode != 'E' && m.mode != 'A' && m.mode != 'P' && m.mode != 'R' &&
          m.mode != 'S')
        return fail(p, kMsMode, swallow);
      return data_block(p, in, line_len, uint64_t(vlen), limits, false);
  }
  p.status = Status::ok;
  p.consumed = line_len;
  return p;
}

struct Name {
  std::string_view name;
  Cmd cmd;
};
constexpr Name kGetNames[] = {
    {"get", Cmd::get},   {"gets", Cmd::gets}, {"gat", Cmd::gat},
    {"gats", Cmd::gats}, {"bget", Cmd::get},  // memcached's ancient alias
};
constexpr Name kStorageNames[] = {
    {"set", Cmd::set},       {"add", Cmd::add},         {"replace", Cmd::replace},
    {"append", Cmd::append}, {"prepend", Cmd::prepend}, {"cas", Cmd::cas},
};
template <size_t N>
bool lookup(const Name (&names)[N], std::string_view c, Cmd& out) {
  for (const Name& n : names) {
    if (n.name == c) {
      out = n.cmd;
      return true;
    }
  }
  return false;
}

}  // namespace

void KeyList::iterator::advance() {
  size_t i = 0;
  while (i < rest_.size() && rest_[i] == ' ') ++i;
  if (i == rest_.size()) {
    cur_ = {};
    rest_ = {};
    return;
  }
  size_t j = i;
  while (j < rest_.size() && rest_[j] != ' ') ++j;
  cur_ = rest_.substr(i, j - i);
  rest_ = rest_.substr(j);
}

Parsed parse(std::string_view in, const Limits& limits, size_t no_newline) {
  Parsed p;
  const size_t scan = in.size() < kMaxGetLine ? in.size() : kMaxGetLine;
  const size_t from = no_newline < scan ? no_newline : scan;
  const void* nl = scan > from ? std::memchr(in.data() + from, '\n', scan - from) : nullptr;
  if (nl == nullptr) {
    // memcached closes without a reply on a line too long; a get line may grow further.
    if (in.size() >= kMaxGetLine || (in.size() >= kMaxLine && !get_family_line(in))) close_now(p);
    return p;  // else need_more, length unknown
  }
  const size_t line_len = size_t(static_cast<const char*>(nl) - in.data()) + 1;
  if (line_len > kMaxLine && !get_family_line(in)) {
    close_now(p);
    return p;
  }
  std::string_view line = in.substr(0, line_len - 1);
  if (line.size() > 1 && line.back() == '\r') line.remove_suffix(1);

  // A get line is split only up to its exptime: parse_get reads its keys in one pass.
  Tokens tk(line);
  tk.split(3);  // command, gat exptime, first key
  const std::string_view c = tk.t[0];
  Cmd cmd{};
  const bool get_family = lookup(kGetNames, c, cmd);
  if (!get_family) tk.split(kMaxTokens);
  if (tk.n == 0 || c.size() < 2)
    fail(p, kError, line_len);
  else if (c.size() == 2 && c[0] == 'm')
    parse_meta(p, in, tk, line_len, limits);
  else if (get_family)
    parse_get(p, tk, line_len, cmd);
  else if (lookup(kStorageNames, c, cmd))
    parse_storage(p, in, tk, line_len, cmd, limits);
  else
    parse_text(p, tk, line_len);
  return p;
}

// --- Replies ---

namespace {

// Appends into a bounded buffer; any overflow makes the whole reply 0.
struct Out {
  char* p;
  size_t cap;
  size_t n = 0;
  bool bad = false;
  explicit Out(std::span<char> o) : p(o.data()), cap(o.size()) {}
  Out& put(std::string_view s) {
    if (bad || s.size() > cap - n) {
      bad = true;
      return *this;
    }
    if (s.empty()) return *this;  // s.data() may be null
    std::memcpy(p + n, s.data(), s.size());
    n += s.size();
    return *this;
  }
  Out& put(char c) { return put(std::string_view(&c, 1)); }
  Out& num(uint64_t v) {
    char b[20];
    size_t i = sizeof b;
    do {
      b[--i] = char('0' + v % 10);
      v /= 10;
    } while (v != 0);
    return put(std::string_view(b + i, sizeof b - i));
  }
  Out& snum(int64_t v) {
    if (v < 0) return put('-').num(uint64_t(0) - uint64_t(v));
    return num(uint64_t(v));
  }
  Out& crlf() { return put("\r\n"); }
  size_t done() const { return bad ? 0 : n; }
};

Out& meta_flags_out(Out& o, std::span<const MetaRet> flags) {
  for (const MetaRet& f : flags) {
    o.put(' ').put(f.flag);
    switch (f.kind) {
      case MetaRet::Kind::bare:
        break;
      case MetaRet::Kind::u64:
        o.num(f.u);
        break;
      case MetaRet::Kind::i64:
        o.snum(f.i);
        break;
      case MetaRet::Kind::text:
        o.put(f.text);
        break;
    }
  }
  return o;
}

}  // namespace

size_t encode_value_header(std::span<char> out, std::string_view key, uint32_t client_flags,
                           size_t bytes, const uint64_t* cas) {
  Out o(out);
  o.put("VALUE ").put(key).put(' ').num(client_flags).put(' ').num(bytes);
  if (cas != nullptr) o.put(' ').num(*cas);
  return o.crlf().done();
}

size_t encode_value(std::span<char> out, std::string_view key, uint32_t client_flags,
                    std::string_view value, const uint64_t* cas) {
  const size_t h = encode_value_header(out, key, client_flags, value.size(), cas);
  if (h == 0) return 0;
  Out o(out.subspan(h));
  return o.put(value).crlf().done() == 0 ? 0 : h + value.size() + 2;
}

std::string_view reply_text(Reply r) {
  switch (r) {
    case Reply::end:
      return "END";
    case Reply::stored:
      return "STORED";
    case Reply::not_stored:
      return "NOT_STORED";
    case Reply::exists:
      return "EXISTS";
    case Reply::not_found:
      return "NOT_FOUND";
    case Reply::deleted:
      return "DELETED";
    case Reply::touched:
      return "TOUCHED";
    case Reply::ok:
      return "OK";
    case Reply::error:
      return "ERROR";
    case Reply::reset:
      return "RESET";
    case Reply::mn:
      return "MN";
    case Reply::en:
      return "EN";
  }
  return "ERROR";
}

size_t encode_line(std::span<char> out, std::string_view line) {
  return Out(out).put(line).crlf().done();
}
size_t encode(std::span<char> out, Reply r) {
  return encode_line(out, reply_text(r));
}
size_t encode_number(std::span<char> out, uint64_t v) {
  return Out(out).num(v).crlf().done();
}
size_t encode_client_error(std::span<char> out, std::string_view msg) {
  return Out(out).put("CLIENT_ERROR ").put(msg).crlf().done();
}
size_t encode_server_error(std::span<char> out, std::string_view msg) {
  return Out(out).put("SERVER_ERROR ").put(msg).crlf().done();
}
size_t encode_stat(std::span<char> out, std::string_view name, std::string_view value) {
  return Out(out).put("STAT ").put(name).put(' ').put(value).crlf().done();
}
size_t encode_stat(std::span<char> out, std::string_view name, uint64_t value) {
  return Out(out).put("STAT ").put(name).put(' ').num(value).crlf().done();
}

size_t encode_meta(std::span<char> out, MetaCode code, std::span<const MetaRet> flags) {
  static constexpr std::string_view kCodes[] = {"HD", "EN", "NF", "NS", "EX", "MN"};
  Out o(out);
  o.put(kCodes[size_t(code)]);
  return meta_flags_out(o, flags).crlf().done();
}

size_t encode_meta_value(std::span<char> out, std::string_view value,
                         std::span<const MetaRet> flags) {
  Out o(out);
  o.put("VA ").num(value.size());
  return meta_flags_out(o, flags).crlf().put(value).crlf().done();
}

size_t encode_meta_debug(std::span<char> out, std::string_view key, std::string_view text) {
  return Out(out).put("ME ").put(key).put(' ').put(text).crlf().done();
}

// --- base64 ---

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

size_t base64_decode(std::string_view in, std::span<uint8_t> out) {
  if (in.empty() || in.size() % 4 != 0) return 0;
  size_t pad = 0;
  if (in.back() == '=') pad = in[in.size() - 2] == '=' ? 2 : 1;
  const size_t n = in.size() / 4 * 3 - pad;
  if (n == 0 || n > out.size()) return 0;
  size_t w = 0;
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    for (size_t j = 0; j < 4; ++j) {
      const bool is_pad = last && j >= 4 - pad;
      v[j] = is_pad ? 0 : b64_value(in[i + j]);
      if (v[j] < 0) return 0;
    }
    const uint32_t q =
        uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    const uint8_t b[3] = {uint8_t(q >> 16), uint8_t(q >> 8), uint8_t(q)};
    for (size_t j = 0; j < 3 && w < n; ++j) out[w++] = b[j];
    // Canonical only: the bits under the padding must be zero.
    if (last && ((pad == 1 && (q & 0xff) != 0) || (pad == 2 && (q & 0xffff) != 0))) return 0;
  }
  return n;
}

size_t base64_encode(std::span<const uint8_t> in, std::span<char> out) {
  const size_t n = (in.size() + 2) / 3 * 4;
  if (n > out.size()) return 0;
  size_t w = 0;
  for (size_t i = 0; i < in.size(); i += 3) {
    const size_t left = in.size() - i;
    const uint32_t q = uint32_t(in[i]) << 16 | (left > 1 ? uint32_t(in[i + 1]) << 8 : 0) |
                       (left > 2 ? uint32_t(in[i + 2]) : 0);
    out[w++] = kB64[q >> 18 & 63];
    out[w++] = kB64[q >> 12 & 63];
    out[w++] = left > 1 ? kB64[q >> 6 & 63] : '=';
    out[w++] = left > 2 ? kB64[q & 63] : '=';
  }
  return n;
}

// --- UDP ---

UdpFrame parse_udp(std::span<const uint8_t> d) {
  UdpFrame f;
  if (d.size() < kUdpHeaderSize) return f;
  const auto be16 = [&d](size_t i) { return uint16_t(d[i] << 8 | d[i + 1]); };
  f.header = {be16(0), be16(2), be16(4), be16(6)};
  if (d.size() == kUdpHeaderSize) return f;  // too_short
  if (f.header.total != 1) {
    f.status = UdpStatus::multi_packet;
    return f;
  }
  f.status = UdpStatus::ok;
  f.payload = d.subspan(kUdpHeaderSize);
  return f;
}

void encode_udp_header(uint8_t* out, const UdpHeader& h) {
  const uint16_t v[4] = {h.request_id, h.seq, h.total, h.reserved};
  for (size_t i = 0; i < 4; ++i) {
    out[2 * i] = uint8_t(v[i] >> 8);
    out[2 * i + 1] = uint8_t(v[i]);
  }
}

uint16_t udp_datagram_count(size_t reply_len) {
  const size_t n = (reply_len + kUdpMaxPayload - 1) / kUdpMaxPayload;
  return n > 0xffff ? uint16_t(0xffff) : uint16_t(n);
}

size_t udp_datagram(std::span<uint8_t> out, uint16_t request_id, std::span<const uint8_t> reply,
                    uint16_t seq) {
  const uint16_t total = udp_datagram_count(reply.size());
  if (seq >= total) return 0;
  const size_t off = size_t(seq) * kUdpMaxPayload;
  const size_t len = reply.size() - off < kUdpMaxPayload ? reply.size() - off : kUdpMaxPayload;
  if (out.size() < kUdpHeaderSize + len) return 0;
  encode_udp_header(out.data(), {request_id, seq, total, 0});
  std::memcpy(out.data() + kUdpHeaderSize, reply.data() + off, len);
  return kUdpHeaderSize + len;
}

}  // namespace cw::kv::proto
