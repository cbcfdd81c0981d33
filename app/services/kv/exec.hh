// The kv service's commands against one partition: a parsed request (protocol.hh) acts on
// a Store (store/store.hh) and its reply is encoded into a caller buffer. No I/O, no clock
// (`now` is unix seconds), no allocation; the handler (service.hh) decides where a request
// runs and where its reply goes. Reply texts are memcached 1.6's (docs/kv.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "app/services/kv/protocol.hh"
#include "app/services/kv/store/store.hh"

namespace cw::kv {

// What `version` answers (memcached's version, so clients that check it accept ours).
inline constexpr std::string_view kVersion = "1.6.18-corewire";
inline constexpr std::string_view kVersionLine = "VERSION 1.6.18-corewire";

// Bytes a reply to one keyed request or one get key may take at most: a VALUE or VA line
// for the longest key, the value, "\r\n". A buffer of this size never overflows.
inline constexpr size_t reply_bytes_max(size_t item_size_max) {
  return item_size_max + 512;
}

// Whether the command is answered on the key's owner (every command with one key).
bool is_keyed(proto::Cmd c);
// get, gets, gat, gats.
bool is_get(proto::Cmd c);

// One keyed request (is_keyed) on the partition owning its key. Writes its reply (nothing
// for noreply, or a quiet meta success or miss) into out; returns the bytes written, or
// kOverflow when out is too small (never with reply_bytes_max bytes).
inline constexpr size_t kOverflow = ~size_t{0};
size_t execute_keyed(Store& s, const proto::Request& r, uint32_t now, std::span<char> out);

// One key of a get line: its VALUE block on a hit, nothing on a miss (the END is the
// caller's). exptime is gat/gats's. Returns bytes written or kOverflow.
size_t execute_get_key(Store& s, proto::Cmd cmd, std::string_view key, int64_t exptime,
                       uint32_t now, std::span<char> out);

// The line a get key is forwarded as ("get <key>\r\n", "gats <exptime> <key>\r\n"):
// parsing it gives back cmd, exptime and key. Returns bytes written or 0 (out too small).
size_t encode_get_key(std::span<char> out, proto::Cmd cmd, int64_t exptime, std::string_view key);

}  // namespace cw::kv
