// A minimal echo service for runtime tests on real backends: datagrams go back to their
// sender, stream bytes back on their connection (no framing). Counts requests and drops.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "app/runtime/service.hh"

namespace cw::rt::test {

struct EchoService {
  template <class Io>
  void on_datagram(Ctx<Io>& ctx, const dp::RxItem& it) {
    uint8_t* p = ctx.io.dgram_reserve(it.sock, it.peer, it.len);
    if (!p) return ctx.svc->dropped.add();
    std::memcpy(p, it.data, it.len);
    ctx.io.dgram_commit(it.len);
    ctx.svc->requests.add();
  }
  template <class Io>
  StreamVerdict on_stream(Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    uint8_t* p = ctx.io.stream_reserve(c, uint32_t(b.size()));
    if (!p) return {uint32_t(b.size()), true};
    std::memcpy(p, b.data(), b.size());
    ctx.io.stream_commit(c, uint32_t(b.size()));
    ctx.svc->requests.add();
    return {uint32_t(b.size()), false};
  }
};

}  // namespace cw::rt::test
