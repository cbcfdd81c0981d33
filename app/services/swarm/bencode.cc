#include "app/services/swarm/bencode.hh"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>

namespace cw::swarm::bencode {
namespace {

bool digit(uint8_t c) {
  return c >= '0' && c <= '9';
}

// An open list or dict on the decoder's stack.
struct Open {
  uint32_t tok;
  uint32_t last_key;  // the dict's previous key token, for the strict order check
  bool dict;
  bool want_key;  // dict: the next element is a key
};

// Byte-wise comparison of two strings (BEP 3: keys sorted as raw strings).
int compare(std::string_view a, std::string_view b) {
  const int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  if (c != 0) return c;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

// "i" [-] digits "e" at in[pos] == 'i'; pos ends past the 'e'.
Error parse_int(Bytes in, size_t& pos, int64_t& out) {
  size_t p = pos + 1;
  const bool neg = p < in.size() && in[p] == '-';
  if (neg) ++p;
  const size_t start = p;
  uint64_t mag = 0;
  const uint64_t max = neg ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  for (; p < in.size() && digit(in[p]); ++p) {
    const uint64_t d = in[p] - '0';
    if (mag > (max - d) / 10) return Error::bad_int;
    mag = mag * 10 + d;
  }
  if (p == in.size()) return Error::truncated;
  const size_t ndigits = p - start;
  if (in[p] != 'e' || ndigits == 0) return Error::bad_int;
  if (in[start] == '0' && (ndigits > 1 || neg)) return Error::bad_int;  // "03", "-0"
  out = neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  pos = p + 1;
  return Error::ok;
}

// digits ":" data at in[pos], a digit; pos ends past the data.
Error parse_string(Bytes in, size_t& pos, size_t max_len, size_t& data, size_t& len) {
  size_t p = pos;
  len = 0;
  for (; p < in.size() && digit(in[p]); ++p) {
    len = len * 10 + (in[p] - '0');
    if (len > max_len) return Error::too_long;
  }
  if (p == in.size()) return Error::truncated;
  if (in[p] != ':') return Error::bad_length;
  if (in[pos] == '0' && p - pos > 1) return Error::bad_length;  // "01:"
  ++p;
  if (in.size() - p < len) return Error::truncated;
  data = p;
  pos = p + len;
  return Error::ok;
}

// Indexed by Error; the static_assert keeps it as long as the enum.
constexpr std::string_view kErrorNames[] = {
    "ok",       "truncated",       "bad_char", "bad_int",      "bad_length",    "too_long",
    "too_deep", "too_many_tokens", "bad_key",  "unsorted_key", "missing_value", "trailing",
    "too_large"};
static_assert(std::size(kErrorNames) == static_cast<size_t>(Error::kCount));

}  // namespace

std::string_view error_name(Error e) {
  const auto i = static_cast<size_t>(e);
  return i < std::size(kErrorNames) ? kErrorNames[i] : "?";
}

std::string_view Doc::str(uint32_t i) const {
  const Token& t = toks[i];
  return {reinterpret_cast<const char*>(buf.data()) + t.value, t.count};
}

Bytes Doc::raw(uint32_t i) const {
  return buf.subspan(toks[i].begin, toks[i].end - toks[i].begin);
}

uint32_t Doc::find(uint32_t d, std::string_view key) const {
  if (!is(d, Type::dict)) return kNone;
  uint32_t k = d + 1;
  for (uint32_t i = 0; i < toks[d].count; ++i, k = next_pair(k)) {
    if (str(k) == key) return k + 1;
  }
  return kNone;
}

Error decode(Bytes in, std::span<Token> toks, const Limits& lim, Doc& doc, size_t* err_at) {
  doc = Doc{};
  if (in.size() > kMaxInput) return Error::too_large;
  const size_t max_depth = std::min(lim.max_depth, kMaxDepth);
  Open stack[kMaxDepth];
  size_t depth = 0;
  size_t pos = 0;
  uint32_t n = 0;
  const auto fail = [&](Error e, size_t at) {
    if (err_at != nullptr) *err_at = at;
    return e;
  };
  for (;;) {
    if (pos >= in.size()) return fail(Error::truncated, pos);
    const uint8_t c = in[pos];
    Open* parent = depth > 0 ? &stack[depth - 1] : nullptr;
    if (parent != nullptr && c == 'e') {
      if (parent->dict && !parent->want_key) return fail(Error::missing_value, pos);
      toks[parent->tok].end = static_cast<uint32_t>(pos + 1);
      toks[parent->tok].next = n;
      ++pos;
      if (--depth == 0) break;
      parent = &stack[depth - 1];
      if (parent->dict) parent->want_key = !parent->want_key;
      continue;
    }
    const bool is_key = parent != nullptr && parent->dict && parent->want_key;
    if (is_key && !digit(c)) return fail(Error::bad_key, pos);
    if (n == toks.size()) return fail(Error::too_many_tokens, pos);
    Token& t = toks[n];
    t = Token{};
    t.begin = static_cast<uint32_t>(pos);
    if (parent != nullptr && (!parent->dict || is_key)) ++toks[parent->tok].count;
    if (c == 'l' || c == 'd') {
      if (depth == max_depth) return fail(Error::too_deep, pos);
      t.type = c == 'l' ? Type::list : Type::dict;
      stack[depth++] = Open{n, kNone, c == 'd', true};
      ++n;
      ++pos;
      continue;
    }
    if (c == 'i') {
      t.type = Type::integer;
      const Error e = parse_int(in, pos, t.value);
      if (e != Error::ok) return fail(e, t.begin);
    } else if (digit(c)) {
      t.type = Type::string;
      size_t data = 0;
      size_t len = 0;
      const Error e = parse_string(in, pos, lim.max_string, data, len);
      if (e != Error::ok) return fail(e, t.begin);
      t.value = static_cast<int64_t>(data);
      t.count = static_cast<uint32_t>(len);
      if (is_key) {
        const std::string_view key(reinterpret_cast<const char*>(in.data()) + data, len);
        if (lim.strict && parent->last_key != kNone) {
          const Token& prev = toks[parent->last_key];
          const std::string_view pk(reinterpret_cast<const char*>(in.data()) + prev.value,
                                    prev.count);
          if (compare(pk, key) >= 0) return fail(Error::unsorted_key, t.begin);
        }
        parent->last_key = n;
      }
    } else {
      return fail(Error::bad_char, pos);
    }
    t.end = static_cast<uint32_t>(pos);
    t.next = ++n;
    if (parent == nullptr) break;
    if (parent->dict) parent->want_key = !parent->want_key;
  }
  if (!lim.allow_trailing && pos != in.size()) return fail(Error::trailing, pos);
  doc.buf = in;
  doc.toks = toks.first(n);
  doc.consumed = pos;
  return Error::ok;
}

void Writer::put(const void* p, size_t n) {
  if (overflow_ || out_.size() - n_ < n) {
    overflow_ = true;
    return;
  }
  std::memcpy(out_.data() + n_, p, n);
  n_ += n;
}

Writer& Writer::integer(int64_t v) {
  char buf[24];
  buf[0] = 'i';
  char* e = std::to_chars(buf + 1, buf + sizeof buf - 1, v).ptr;
  *e++ = 'e';
  put(buf, static_cast<size_t>(e - buf));
  return *this;
}

Writer& Writer::string(Bytes b) {
  char buf[24];
  char* e = std::to_chars(buf, buf + sizeof buf - 1, b.size()).ptr;
  *e++ = ':';
  put(buf, static_cast<size_t>(e - buf));
  put(b.data(), b.size());
  return *this;
}

Writer& Writer::string(std::string_view s) {
  return string(Bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

Writer& Writer::list() {
  put("l", 1);
  return *this;
}

Writer& Writer::dict() {
  put("d", 1);
  return *this;
}

Writer& Writer::end() {
  put("e", 1);
  return *this;
}

Writer& Writer::raw(Bytes b) {
  put(b.data(), b.size());
  return *this;
}

}  // namespace cw::swarm::bencode
