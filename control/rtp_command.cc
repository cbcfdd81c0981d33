// The control socket's `rtp` command: the request's JSON as the rtp service's command text.
#include "control/rtp_command.hh"

#include <array>
#include <string_view>

namespace cw::ctl {

Result<std::string> rtp_command_text(const Json& req) {
  auto op = req.find("op");
  if (op == req.end() || !op->is_string())
    return make_error("rtp needs a string \"op\": open, close or list");
  const std::string o = op->get<std::string>();
  if (o != "open" && o != "close" && o != "list")
    return make_error("unknown rtp op '" + o + "' (open, close, list)");
  static constexpr std::array<std::string_view, 5> kKeys = {"peer", "peer_b", "pt", "ssrc",
                                                            "peer_ssrc"};
  std::string text = o;
  for (const auto& [k, v] : req.items()) {
    if (k == "cmd" || k == "op" || k == "table") continue;
    bool known = false;
    for (std::string_view key : kKeys) known = known || k == key;
    if (!known) return make_error("unknown rtp key '" + k + "'");
    std::string value;
    if (v.is_string()) {
      value = v.get<std::string>();
      // One token of the command text: printable, no space, no '='.
      for (char ch : value)
        if (ch <= ' ' || ch > '~' || ch == '=')
          return make_error("\"" + k + "\" holds a space, '=' or a non-printable byte");
    } else if (v.is_number_unsigned()) {
      value = std::to_string(v.get<uint64_t>());
    } else if (v.is_number_integer() && v.get<int64_t>() >= 0) {
      value = std::to_string(v.get<int64_t>());
    } else {
      return make_error("\"" + k + "\" must be a string or a non-negative integer");
    }
    if (value.empty()) return make_error("\"" + k + "\" is empty");
    text += " " + k + "=" + value;
  }
  return text;
}

}  // namespace cw::ctl
