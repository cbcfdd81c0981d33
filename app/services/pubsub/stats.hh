// The pubsub service's declared counters (app/runtime/counters.hh): nats-server's /varz
// names where they mean the same (in_msgs, out_msgs, in_bytes, out_bytes, slow_consumers,
// subscriptions, connections, total_connections), then the service's own.
#pragma once

#include <cstdint>

#include "app/runtime/counters.hh"

namespace cw::pubsub {

enum PubsubCounter : uint32_t {
  kInMsgs,
  kOutMsgs,
  kInBytes,
  kOutBytes,
  kSlowConsumers,
  kSubscriptions,
  kConnections,
  kTotalConnections,
  kStaleConnections,
  kAuthFailures,
  kRefusedConnections,
  kProtocolErrors,
  kNoResponders,
  kForwarded,
  kForwardFailed,
  kQueueDropped,
  kInterestFull,
  kSubsRefused,
  kPublisherWaits,
  kPubsubCounterCount
};

// clang-format off
inline constexpr rt::CounterDecl kPubsubCounters[] = {
    {"in_msgs", "Messages published by this worker's clients (PUB, HPUB)"},
    {"out_msgs", "Messages delivered to this worker's clients (MSG, HMSG)"},
    {"in_bytes", "Payload bytes published, headers included"},
    {"out_bytes", "Payload bytes delivered, headers included"},
    {"slow_consumers", "Connections closed past max_pending ('Slow Consumer')"},
    {"subscriptions", "Subscriptions of this worker's clients", rt::CounterKind::gauge},
    {"connections", "Client connections open on this worker", rt::CounterKind::gauge},
    {"total_connections", "Client connections accepted"},
    {"stale_connections", "Connections closed after max_pings_out unanswered PINGs"},
    {"auth_failures", "Connections refused 'Authorization Violation'"},
    {"refused_connections", "Connections refused past max_connections"},
    {"protocol_errors", "Connections closed for a protocol error"},
    {"no_responders", "Requests answered with the no-responders status (503)"},
    {"forwarded", "Batches of messages mailed to another worker for its subscribers"},
    {"forward_failed", "Message batches another worker could not be mailed (mailbox full)"},
    {"queue_dropped", "Queue-group picks whose member had gone when the message came"},
    {"interest_full", "Other workers' subscriptions not recorded (table full)"},
    {"subs_refused", "SUBs refused: max_subscriptions or a full table"},
    {"publisher_waits", "Publishers paused for mail backpressure or mail buffers"},
};
// clang-format on
static_assert(sizeof(kPubsubCounters) / sizeof(kPubsubCounters[0]) == kPubsubCounterCount);

}  // namespace cw::pubsub
