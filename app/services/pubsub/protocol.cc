// The NATS client protocol codec (protocol.hh). Behaviour follows what nats-server 2.9.10
// answers on the wire (tests/integration/test_pubsub_diff.py compares the two).
#include "app/services/pubsub/protocol.hh"

#include <algorithm>
#include <array>
#include <cstring>

namespace cw::pubsub::proto {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? char(c + 32) : c;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != b[i]) return false;
  return true;
}

struct OpName {
  std::string_view name;  // lower case
  Op op;
};
constexpr std::array<OpName, 10> kOps = {{{"connect", Op::connect},
                                          {"pub", Op::pub},
                                          {"hpub", Op::hpub},
                                          {"sub", Op::sub},
                                          {"unsub", Op::unsub},
                                          {"ping", Op::ping},
                                          {"pong", Op::pong},
                                          {"info", Op::info},
                                          {"+ok", Op::ok},
                                          {"-err", Op::err}}};

// Whether `p` (no white space yet) can still become an op name.
bool op_prefix(std::string_view p) {
  for (const OpName& o : kOps)
    if (p.size() <= o.name.size() && iequal(p, o.name.substr(0, p.size()))) return true;
  return false;
}

// Up to N whitespace-separated tokens of `s`; returns how many there were (N + 1: more).
template <size_t N>
size_t split(std::string_view s, std::array<std::string_view, N>& out) {
  size_t n = 0, i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i == s.size()) break;
    const size_t b = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (n == N) return N + 1;
    out[n++] = s.substr(b, i - b);
  }
  return n;
}

// A size field: decimal digits only, at most kMaxSizeDigits of them; -1 otherwise.
int64_t size_field(std::string_view s) {
  if (s.empty() || s.size() > kMaxSizeDigits) return -1;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

Parsed fail(Err e) {
  Parsed p;
  p.status = Status::error;
  p.err = e;
  return p;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// PUB/HPUB: arguments, then the payload and its CRLF once `in` holds them.
Parsed parse_pub(Parsed p, std::span<const uint8_t> in, size_t line_end, std::string_view args,
                 const Limits& limits) {
  std::array<std::string_view, 4> t;
  const bool h = p.op == Op::hpub;
  const size_t n = split(args, t);
  const size_t sizes = h ? 2 : 1;
  if (n < 1 + sizes || n > 2 + sizes) return fail(Err::silent);
  p.subject = t[0];
  if (n == 2 + sizes) p.reply = t[1];
  const int64_t total = size_field(t[n - 1]);
  const int64_t hdr = h ? size_field(t[n - 2]) : 0;
  if (total < 0 || hdr < 0) return fail(Err::silent);
  if (uint64_t(total) > limits.max_payload) return fail(Err::max_payload);
  if (hdr > total) return fail(Err::silent);
  const size_t need = line_end + size_t(total) + 2;
  if (in.size() < need) {
    p.status = Status::need_more;
    p.need = need;
    return p;
  }
  if (in[need - 2] != '\r' || in[need - 1] != '\n') return fail(Err::unknown_op);
  p.payload = in.subspan(line_end, size_t(total));
  p.hdr_len = uint32_t(hdr);
  p.consumed = need;
  p.status = Status::ok;
  return p;
}

}  // namespace

Parsed parse(std::span<const uint8_t> in, const Limits& limits) {
  const std::string_view s(reinterpret_cast<const char*>(in.data()), in.size());
  // The op name: up to white space or the line end.
  size_t name_end = 0;
  while (name_end < s.size() && !is_space(s[name_end]) && s[name_end] != '\r' &&
         s[name_end] != '\n')
    ++name_end;
  const std::string_view name = s.substr(0, name_end);
  if (!op_prefix(name) || (name.empty() && !s.empty())) return fail(Err::unknown_op);
  const size_t nl = s.find('\n', name_end);
  if (nl == std::string_view::npos) {
    if (s.size() - name_end > kMaxControlLine + 1) return fail(Err::max_control_line);
    return Parsed{};
  }
  Parsed p;
  bool known = false;
  for (const OpName& o : kOps)
    if (iequal(name, o.name)) {
      p.op = o.op;
      known = true;
    }
  if (!known) return fail(Err::unknown_op);
  std::string_view args = s.substr(name_end, nl - name_end);
  if (!args.empty() && args.back() == '\r') args.remove_suffix(1);
  if (args.size() > kMaxControlLine) return fail(Err::max_control_line);
  // The op name must end at white space or the line end ("PUBX" is no PUB).
  if (!args.empty() && !is_space(args.front())) return fail(Err::unknown_op);
  const size_t line_end = nl + 1;
  if (p.op == Op::pub || p.op == Op::hpub) {
    if (p.op == Op::hpub && !limits.headers) return fail(Err::silent);
    return parse_pub(p, in, line_end, args, limits);
  }
  p.status = Status::ok;
  p.consumed = line_end;
  switch (p.op) {
    case Op::sub: {
      std::array<std::string_view, 3> t;
      const size_t n = split(args, t);
      if (n < 2 || n > 3) return fail(Err::silent);
      p.subject = t[0];
      if (n == 3) p.queue = t[1];
      p.sid = t[n - 1];
      break;
    }
    case Op::unsub: {
      std::array<std::string_view, 2> t;
      const size_t n = split(args, t);
      if (n == 0) return fail(Err::unknown_op);
      if (n > 2) return fail(Err::silent);
      p.sid = t[0];
      if (n == 2) {
        const int64_t m = size_field(t[1]);
        p.max_msgs = m > 0 ? uint64_t(m) : 0;  // not a number: no limit, as nats-server
      }
      break;
    }
    case Op::connect:
    case Op::info:
      p.json = trim(args);
      if (p.op == Op::connect && p.json.empty()) return fail(Err::silent);
      break;
    case Op::err:
      return fail(Err::silent);
    default:
      break;  // PING, PONG, +OK: arguments ignored
  }
  return p;
}

std::string_view error_text(Err e) {
  switch (e) {
    case Err::unknown_op:
      return "Unknown Protocol Operation";
    case Err::max_control_line:
      return "maximum control line exceeded";
    case Err::max_payload:
      return "Maximum Payload Violation";
    default:
      return {};
  }
}

bool valid_subject(std::string_view s) {
  if (s.empty()) return false;
  bool full_wildcard = false;
  size_t b = 0;
  while (true) {
    const size_t e = std::min(s.find('.', b), s.size());
    const std::string_view t = s.substr(b, e - b);
    if (t.empty() || full_wildcard) return false;
    for (char c : t)
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f') return false;
    if (t == ">") full_wildcard = true;
    if (e == s.size()) return true;
    b = e + 1;
  }
}

bool has_wildcard(std::string_view s) {
  size_t b = 0;
  while (true) {
    const size_t e = std::min(s.find('.', b), s.size());
    const std::string_view t = s.substr(b, e - b);
    if (t == "*" || t == ">") return true;
    if (e == s.size()) return false;
    b = e + 1;
  }
}

bool valid_literal_subject(std::string_view s) {
  return valid_subject(s) && !has_wildcard(s);
}

bool subject_matches(std::string_view filter, std::string_view subject) {
  // Each round holds one token of each: '>' takes the subject's current and every later one.
  size_t fb = 0, sb = 0;
  while (true) {
    const size_t fe = std::min(filter.find('.', fb), filter.size());
    const size_t se = std::min(subject.find('.', sb), subject.size());
    const std::string_view ft = filter.substr(fb, fe - fb), st = subject.substr(sb, se - sb);
    if (ft == ">") return true;
    if (ft != "*" && ft != st) return false;
    const bool f_last = fe == filter.size(), s_last = se == subject.size();
    if (f_last || s_last) return f_last && s_last;
    fb = fe + 1;
    sb = se + 1;
  }
}

// --- CONNECT ---
namespace {

struct Json {
  std::string_view s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  // A string; its raw text between the quotes.
  bool str(std::string_view& out) {
    ws();
    if (i >= s.size() || s[i] != '"') return false;
    const size_t b = ++i;
    while (i < s.size() && s[i] != '"') {
      if (uint8_t(s[i]) < 0x20) return false;
      i += s[i] == '\\' ? 2 : 1;
    }
    if (i >= s.size()) return false;
    out = s.substr(b, i - b);
    ++i;
    return true;
  }
  bool word(std::string_view w) {
    if (s.substr(i, w.size()) != w) return false;
    i += w.size();
    return true;
  }
  // Any value, skipped (depth-bounded); a bool is reported through `b`.
  bool value(int depth, bool* b) {
    ws();
    if (i >= s.size() || depth > 32) return false;
    const char c = s[i];
    if (c == '"') {
      std::string_view x;
      return str(x);
    }
    if (c == 't' || c == 'f') {
      if (b) *b = c == 't';
      return word(c == 't' ? "true" : "false");
    }
    if (c == 'n') return word("null");
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i;
      if (eat(close)) return true;
      do {
        if (c == '{') {
          std::string_view k;
          if (!str(k) || !eat(':')) return false;
        }
        if (!value(depth + 1, nullptr)) return false;
      } while (eat(','));
      return eat(close);
    }
    const size_t b0 = i;
    while (i < s.size() && (std::strchr("+-.eE", s[i]) || (s[i] >= '0' && s[i] <= '9'))) ++i;
    return i > b0;
  }
};

}  // namespace

bool parse_connect(std::string_view json, ConnectOpts& o) {
  Json j{json};
  if (!j.eat('{')) return false;
  ConnectOpts r = o;
  if (!j.eat('}')) {
    do {
      std::string_view k;
      if (!j.str(k) || !j.eat(':')) return false;
      j.ws();
      const bool is_str = j.i < json.size() && json[j.i] == '"';
      std::string_view sv;
      bool bv = false, is_bool = false;
      if (is_str) {
        if (!j.str(sv)) return false;
      } else {
        const size_t at = j.i;
        if (!j.value(0, &bv)) return false;
        is_bool = json[at] == 't' || json[at] == 'f';
      }
      if (is_bool) {
        if (k == "verbose") r.verbose = bv;
        if (k == "pedantic") r.pedantic = bv;
        if (k == "echo") r.echo = bv;
        if (k == "headers") r.headers = bv;
        if (k == "no_responders") r.no_responders = bv;
      } else if (is_str) {
        if (k == "user") r.user = sv, r.user_set = true;
        if (k == "pass") r.pass = sv, r.pass_set = true;
        if (k == "auth_token") r.auth_token = sv, r.token_set = true;
        if (k == "name") r.name = sv;
      }
    } while (j.eat(','));
    if (!j.eat('}')) return false;
  }
  j.ws();
  if (j.i != json.size()) return false;
  o = r;
  return true;
}

// --- encoders ---
namespace {

struct Writer {
  std::span<char> out;
  size_t n = 0;
  bool ok = true;
  void put(std::string_view s) {
    if (!ok || s.size() > out.size() - n) {
      ok = false;
      return;
    }
    std::memcpy(out.data() + n, s.data(), s.size());
    n += s.size();
  }
  size_t done() const { return ok ? n : 0; }
};

}  // namespace

namespace {

size_t digits(size_t v) {
  size_t n = 1;
  for (; v >= 10; v /= 10) ++n;
  return n;
}

char* put(char* o, std::string_view s) {
  std::memcpy(o, s.data(), s.size());
  return o + s.size();
}

char* put_num(char* o, size_t v) {
  const size_t n = digits(v);
  for (size_t i = n; i-- > 0; v /= 10) o[i] = char('0' + v % 10);
  return o + n;
}

}  // namespace

// "<op> <subject> <sid> [reply] " then the sizes and CRLF: MSG has one size, HMSG two.
size_t msg_head_size(std::string_view subject, std::string_view sid, std::string_view reply,
                     const size_t* hdr, size_t total) {
  size_t n = (hdr ? 5 : 4) + subject.size() + 1 + sid.size() + 1 + digits(total) + 2;
  if (!reply.empty()) n += reply.size() + 1;
  if (hdr) n += digits(*hdr) + 1;
  return n;
}

void write_msg_head(char* o, std::string_view subject, std::string_view sid, std::string_view reply,
                    const size_t* hdr, size_t total) {
  o = put(o, hdr ? "HMSG " : "MSG ");
  o = put(o, subject);
  *o++ = ' ';
  o = put(o, sid);
  *o++ = ' ';
  if (!reply.empty()) {
    o = put(o, reply);
    *o++ = ' ';
  }
  if (hdr) {
    o = put_num(o, *hdr);
    *o++ = ' ';
  }
  o = put_num(o, total);
  o[0] = '\r';
  o[1] = '\n';
}

size_t encode_msg_head(std::span<char> out, std::string_view subject, std::string_view sid,
                       std::string_view reply, size_t size) {
  const size_t n = msg_head_size(subject, sid, reply, nullptr, size);
  if (n > out.size()) return 0;
  write_msg_head(out.data(), subject, sid, reply, nullptr, size);
  return n;
}

size_t encode_hmsg_head(std::span<char> out, std::string_view subject, std::string_view sid,
                        std::string_view reply, size_t hdr, size_t total) {
  const size_t n = msg_head_size(subject, sid, reply, &hdr, total);
  if (n > out.size()) return 0;
  write_msg_head(out.data(), subject, sid, reply, &hdr, total);
  return n;
}

size_t encode_err(std::span<char> out, std::string_view text) {
  Writer w{out};
  w.put("-ERR '");
  w.put(text);
  w.put("'\r\n");
  return w.done();
}

}  // namespace cw::pubsub::proto
