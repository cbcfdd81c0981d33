#include "bench/corewire_bench/kv_codec.hh"

#include <cstring>

namespace cw::bench::kv {
namespace {

uint32_t digits(uint64_t v) {
  uint32_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

// Writes v in decimal at out; returns the bytes written.
uint32_t put_u64(char* out, uint64_t v) {
  const uint32_t n = digits(v);
  for (uint32_t i = n; i-- > 0; v /= 10) out[i] = char('0' + v % 10);
  return n;
}

char* put(char* out, std::string_view s) {
  std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

// A decimal number of at most 20 digits that fits 64 bits; false otherwise.
bool parse_u64(std::string_view s, uint64_t& v) {
  if (s.empty() || s.size() > 20) return false;
  v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  return true;
}

// Splits off the token before the next single space (memcached separates by one space).
std::string_view next_token(std::string_view& rest) {
  const size_t sp = rest.find(' ');
  const std::string_view t = rest.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
  return t;
}

// Meta return flags: tokens of non-space printable bytes after the code.
bool meta_flags_ok(std::string_view rest) {
  while (!rest.empty()) {
    const std::string_view t = next_token(rest);
    if (t.empty()) return false;
    for (char c : t)
      if (uint8_t(c) <= 0x20 || uint8_t(c) >= 0x7f) return false;
  }
  return true;
}

// "<code>" or, for meta codes, "<code> <flags>".
bool is_code(std::string_view line, std::string_view code, bool flags) {
  if (line == code) return true;
  return flags && line.size() > code.size() + 1 && line.starts_with(code) &&
         line[code.size()] == ' ' && meta_flags_ok(line.substr(code.size() + 1));
}

// The data length of a value line, or false when the line is malformed.
bool value_len(std::string_view line, uint64_t& len) {
  if (line.starts_with("VALUE ")) {
    std::string_view rest = line.substr(6);
    const std::string_view key = next_token(rest);
    uint64_t flags, cas;
    if (key.empty() || key.size() > 250) return false;
    if (!parse_u64(next_token(rest), flags) || flags > UINT32_MAX) return false;
    if (!parse_u64(next_token(rest), len)) return false;
    return rest.empty() || (parse_u64(next_token(rest), cas) && rest.empty());
  }
  if (line.starts_with("VA ")) {
    std::string_view rest = line.substr(3);
    return parse_u64(next_token(rest), len) && meta_flags_ok(rest);
  }
  return false;
}

Elem classify(std::string_view line) {
  if (line == "END") return Elem::end;
  if (line == "MN") return Elem::meta_end;
  if (is_code(line, "EN", true)) return Elem::miss;
  if (line == "STORED" || is_code(line, "HD", true)) return Elem::stored;
  if (line == "NOT_STORED" || line == "EXISTS" || line == "NOT_FOUND" ||
      is_code(line, "NS", true) || is_code(line, "EX", true) || is_code(line, "NF", true))
    return Elem::not_stored;
  if (line == "ERROR" || line.starts_with("CLIENT_ERROR ") || line.starts_with("SERVER_ERROR "))
    return Elem::error;
  return Elem::bad;
}

}  // namespace

uint32_t min_key_size(uint64_t keys) {
  return 1 + digits(keys ? keys - 1 : 0);
}

void write_key(char* out, uint32_t key_size, uint64_t index) {
  out[0] = 'k';
  for (uint32_t i = key_size; i-- > 1; index /= 10) out[i] = char('0' + index % 10);
}

uint32_t get_size(KvProto p, uint32_t key_size, uint32_t nkeys) {
  if (p == KvProto::text) return 3 + nkeys * (1 + key_size) + 2;
  if (nkeys == 1) return 3 + key_size + 4;
  return nkeys * (3 + key_size + 6) + 4;
}

void encode_get(KvProto p, char* out, uint32_t key_size, std::span<const uint64_t> keys) {
  if (p == KvProto::text) {
    out = put(out, "get");
    for (uint64_t k : keys) {
      *out++ = ' ';
      write_key(out, key_size, k);
      out += key_size;
    }
    put(out, "\r\n");
    return;
  }
  const bool multi = keys.size() > 1;
  for (uint64_t k : keys) {
    out = put(out, "mg ");
    write_key(out, key_size, k);
    out = put(out + key_size, multi ? " v q\r\n" : " v\r\n");
  }
  if (multi) put(out, "mn\r\n");
}

uint32_t set_size(KvProto p, uint32_t key_size, uint32_t value_len) {
  const uint32_t line = p == KvProto::text ? 4 + key_size + 5 + digits(value_len) + 2
                                           : 3 + key_size + 1 + digits(value_len) + 2;
  return line + value_len + 2;
}

void encode_set(KvProto p, char* out, uint32_t key_size, uint64_t key, std::string_view value) {
  out = put(out, p == KvProto::text ? "set " : "ms ");
  write_key(out, key_size, key);
  out = put(out + key_size, p == KvProto::text ? " 0 0 " : " ");
  out += put_u64(out, value.size());
  out = put(put(out, "\r\n"), value);
  put(out, "\r\n");
}

Element parse_element(std::span<const uint8_t> in, uint32_t max_value) {
  const std::string_view s(reinterpret_cast<const char*>(in.data()), in.size());
  const size_t nl = s.find('\n');
  if (nl == std::string_view::npos)
    return {s.size() >= kMaxReplyLine ? Elem::bad : Elem::need_more, 0, 0};
  if (nl + 1 > kMaxReplyLine || nl == 0 || s[nl - 1] != '\r') return {Elem::bad, 0, 0};
  const std::string_view line = s.substr(0, nl - 1);
  if (line.ends_with(' ')) return {Elem::bad, 0, 0};  // memcached ends no line with a space
  const uint32_t line_len = uint32_t(nl + 1);
  if (line.starts_with("VA") || line.starts_with("VALUE")) {
    uint64_t len = 0;
    if (!value_len(line, len) || len > max_value) return {Elem::bad, 0, 0};
    const uint32_t total = line_len + uint32_t(len) + 2;
    if (in.size() < total) return {Elem::need_more, 0, total, line_len};
    if (s[total - 2] != '\r' || s[total - 1] != '\n') return {Elem::bad, 0, 0};
    return {Elem::value, total, 0, line_len};
  }
  const Elem e = classify(line);
  return {e, e == Elem::bad ? 0 : line_len, 0};
}

Step follow(KvProto p, bool get, uint32_t nkeys, ReplyState& st, Elem e) {
  if (e == Elem::error) {
    st.error = true;
    return p == KvProto::meta && get && nkeys > 1 ? Step::more : Step::done;
  }
  if (!get) {
    if (e == Elem::stored) return Step::done;
    if (e != Elem::not_stored) return Step::bad;
    st.error = true;
    return Step::done;
  }
  if (e == Elem::value) {
    if (st.hits == nkeys) return Step::bad;  // more values than keys asked
    ++st.hits;
    return p == KvProto::meta && nkeys == 1 ? Step::done : Step::more;
  }
  if (p == KvProto::text) return e == Elem::end ? Step::done : Step::bad;
  if (nkeys == 1) return e == Elem::miss ? Step::done : Step::bad;
  if (e == Elem::miss) return Step::more;  // a server that ignores q: not an error
  return e == Elem::meta_end ? Step::done : Step::bad;
}

UdpReply parse_udp_reply(std::span<const uint8_t> d) {
  UdpReply r;
  if (d.size() < 8) return r;
  auto be16 = [&](size_t i) { return uint16_t(d[i] << 8 | d[i + 1]); };
  r.request_id = be16(0);
  r.seq = be16(2);
  r.total = be16(4);
  r.payload = d.subspan(8);
  r.ok = r.total >= 1 && r.seq < r.total;
  return r;
}

}  // namespace cw::bench::kv
