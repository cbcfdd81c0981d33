// Native-protocol echo (default port 11112, UDP and TCP): a request to service kEchoService
// gets a response with the same request id, service id and payload; a one-way message is
// counted and not answered. Error handling and the UDP amplification rule: docs/protocol.md.
// One instance per worker; nothing is shared and nothing is allocated. Its state is the
// service id it answers (config key service_id) and the enabled flag (`corewirectl service
// enable|disable echo`, ServiceSwitch).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "app/protocol/native.hh"
#include "app/runtime/registry.hh"
#include "app/runtime/service.hh"
#include "app/runtime/service_keys.hh"
#include "app/services/service_switch.hh"
#include "app/services/udp_reply.hh"
#include "dataplane/io.hh"

namespace cw::svc {

inline constexpr uint16_t kEchoService = 1;  // native service id of echo

// While disabled (ServiceSwitch) a well-formed request is still counted (requests) but
// answered with an error, code unavailable (errors); a one-way message is dropped
// (dropped). A drain needs nothing here: echo keeps no state between messages.
class NativeEcho : public ServiceSwitch {
 public:
  // Its [[service]] keys (docs/configuration.md): the native service id it answers.
  struct Options {
    uint16_t service_id = kEchoService;
  };
  static constexpr std::array<std::string_view, 1> kOptionKeys = {"service_id"};
  static Options parse_options(rt::ServiceKeys& k) {
    Options o;
    if (auto id = k.integer("service_id", 1, 65535)) o.service_id = uint16_t(*id);
    return o;
  }

  NativeEcho() = default;
  NativeEcho(const rt::ServiceCtx&, const Options& o) : service_id_(o.service_id) {}

  // Declared counters (app/runtime/counters.hh), by index.
  enum : uint32_t { kOneway };
  static constexpr rt::CounterDecl kCounters[] = {
      {"oneway", "One-way messages consumed (never answered)"}};

  uint32_t max_frame() const { return proto::native::kHeaderSize + proto::native::kMaxPayload; }

  // One message per datagram. Errors are answered only within the amplification rule.
  template <class Io>
  void on_datagram(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    namespace nt = proto::native;
    const nt::Decoded d = nt::decode({it.data, it.len});
    if (d.status == nt::Status::ok) {
      if (d.frame_len != it.len) return ctx.svc->malformed.add();  // trailing bytes
      const Action a = classify(d.header);
      if (a == Action::drop) return ctx.svc->malformed.add();
      if (a == Action::unknown_service)
        return udp_error(ctx, it, d.header, nt::ErrorCode::unknown_service);
      ctx.svc->requests.add();
      if (!enabled()) {
        if (a == Action::consume) return ctx.svc->dropped.add();
        return udp_error(ctx, it, d.header, nt::ErrorCode::unavailable);
      }
      if (a == Action::consume) return ctx.counters[kOneway].add();
      uint8_t* out = ctx.io.dgram_reserve(it.sock, it.peer, d.frame_len);
      if (!out) return ctx.svc->dropped.add();
      ctx.io.dgram_commit(nt::encode_message(out, response_to(d.header), d.payload));
      ctx.svc->responses.add();
      return;
    }
    // need_more on a datagram means truncated; it is answerable once the header is whole.
    if (!answerable(d, it.len)) return ctx.svc->malformed.add();
    udp_error(ctx, it, d.header, nt::error_for(d.status));
  }

  // Whole frames are handled in order; a partial one is left to the runtime. A frame that
  // breaks the protocol gets its error (when answerable) and the connection is closed.
  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    namespace nt = proto::native;
    uint32_t used = 0;
    while (used < b.size()) {
      const std::span<const uint8_t> rest = b.subspan(used);
      const nt::Decoded d = nt::decode(rest);
      if (d.status == nt::Status::need_more) break;
      if (d.status != nt::Status::ok) {
        if (answerable(d, uint32_t(rest.size())))
          stream_error(ctx, c, d.header, nt::error_for(d.status));
        else
          ctx.svc->malformed.add();
        return {used, true};
      }
      used += d.frame_len;
      const Action a = classify(d.header);
      if (a == Action::drop) {
        ctx.svc->malformed.add();
        continue;
      }
      if (a == Action::unknown_service) {  // well-framed: answer and keep the connection
        if (!stream_error(ctx, c, d.header, nt::ErrorCode::unknown_service)) return {used, true};
        continue;
      }
      ctx.svc->requests.add();
      if (!enabled()) {
        if (a == Action::consume) {
          ctx.svc->dropped.add();
          continue;
        }
        if (!stream_error(ctx, c, d.header, nt::ErrorCode::unavailable)) return {used, true};
        continue;
      }
      if (a == Action::consume) {
        ctx.counters[kOneway].add();
        continue;
      }
      uint8_t* out = ctx.io.stream_reserve(c, d.frame_len);
      if (!out) {  // connection gone or its output bound hit (the backend closes it)
        ctx.svc->dropped.add();
        return {used, true};
      }
      ctx.io.stream_commit(c, nt::encode_message(out, response_to(d.header), d.payload));
      ctx.svc->responses.add();
    }
    return {used, false};
  }

 private:
  enum class Action : uint8_t { reply, consume, drop, unknown_service };

  // What a well-formed message asks for.
  Action classify(const proto::native::Header& h) const {
    using proto::native::Kind;
    switch (h.kind) {
      case Kind::request:
        return h.service == service_id_ ? Action::reply : Action::unknown_service;
      case Kind::oneway:
        return h.service == service_id_ ? Action::consume : Action::drop;
      case Kind::response:
      case Kind::error:
        break;  // never answer these: two servers must not bounce errors forever
    }
    return Action::drop;
  }

  // A broken message deserves an error reply only when its header is whole and it may be a
  // request: a bad version or kind might be one (we cannot tell), a v1 one-way/response/
  // error never gets an answer.
  static bool answerable(const proto::native::Decoded& d, uint32_t have) {
    using proto::native::Status;
    if (d.status == Status::bad_magic || have < proto::native::kHeaderSize) return false;
    if (d.status == Status::bad_version || d.status == Status::bad_kind) return true;
    return d.header.kind == proto::native::Kind::request;
  }

  static proto::native::Header response_to(proto::native::Header h) {
    h.kind = proto::native::Kind::response;
    h.flags = 0;
    return h;
  }

  template <class Io>
  static void udp_error(rt::Ctx<Io>& ctx, const dp::RxItem& it, const proto::native::Header& req,
                        proto::native::ErrorCode code) {
    if (!udp_reply_allowed(it.len, proto::native::kErrorSize)) return ctx.svc->malformed.add();
    uint8_t* out = ctx.io.dgram_reserve(it.sock, it.peer, proto::native::kErrorSize);
    if (!out) return ctx.svc->dropped.add();
    ctx.io.dgram_commit(proto::native::encode_error(out, req, code));
    ctx.svc->errors.add();
  }

  // False when the reply could not be queued (the connection is gone or being closed).
  template <class Io>
  static bool stream_error(rt::Ctx<Io>& ctx, dp::ConnId c, const proto::native::Header& req,
                           proto::native::ErrorCode code) {
    uint8_t* out = ctx.io.stream_reserve(c, proto::native::kErrorSize);
    if (!out) {
      ctx.svc->dropped.add();
      return false;
    }
    ctx.io.stream_commit(c, proto::native::encode_error(out, req, code));
    ctx.svc->errors.add();
    return true;
  }

  uint16_t service_id_ = kEchoService;  // the native service id answered (Options)
};

}  // namespace cw::svc
