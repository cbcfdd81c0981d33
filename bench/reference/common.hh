// What the reference servers and the blaster share: the reply rule of each dialect, socket
// setup, core pinning, the stop flag, and UDP GSO trains. Plain code on purpose: a reference
// is only trusted if it is obviously what it claims to be (bench/README.md).
#pragma once

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/io.hh"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // <linux/udp.h>
#endif
#ifndef UDP_GRO
#define UDP_GRO 104  // <linux/udp.h>
#endif

namespace cw::ref {

// raw: every datagram / stream byte goes back unchanged.
// sockperf: messages with client|pong-request set and warm-up clear come back with the
//   client bit cleared (app/protocol/sockperf.hh); TCP is framed by the length field.
// native: requests come back as responses (same id, service, payload); the rest is ignored.
enum class Mode { raw, sockperf, native };

// The kernel's UDP_MAX_SEGMENTS and the largest train (one IP packet before segmentation).
inline constexpr uint32_t kMaxSegs = 64;
inline constexpr uint32_t kMaxTrainBytes = 65000;
// A segment must fit the path MTU unfragmented; larger datagrams go out alone.
inline constexpr uint32_t kMaxSegBytes = 1472;

inline volatile std::sig_atomic_t g_stop = 0;

// SIGINT / SIGTERM set g_stop; the loops check it.
void on_stop_signals();
// Pins the calling thread to core (no-op when core < 0); false on failure.
bool pin(int core);
// UDP socket buffers asked for, as corewire's kernel backends do (SO_*BUFFORCE when
// privileged, else capped at net.core.rmem_max / wmem_max): a burst the server is slow to
// drain waits in the socket instead of being dropped there.
inline constexpr int kUdpBufferBytes = 8 << 20;
void size_udp_buffers(int fd);
// A nonblocking bound socket (listening for SOCK_STREAM); -1 on failure. *bound gets the
// bound address ("127.0.0.1:port"). UDP sockets get size_udp_buffers().
int open_socket(int type, const dp::Endpoint& ep, std::string* bound);
// Parses "raw|sockperf|native".
Mode parse_mode(const std::string& s);

// Framed modes: turns the message at msg (avail bytes) into its reply in place. Returns the
// message length, 0 when incomplete, -1 when it is not this protocol; *answer says whether
// the (now rewritten) message goes back. Raw mode: the whole of avail, always answered.
int64_t reply_in_place(Mode mode, uint8_t* msg, uint32_t avail, bool* answer);

// The control message of a GSO train; ctl must hold CMSG_SPACE(sizeof(uint16_t)) bytes.
inline constexpr size_t kGsoCtl = CMSG_SPACE(sizeof(uint16_t));
void set_gso(msghdr* m, unsigned char* ctl, uint16_t seg);

// Groups replies into trains: consecutive replies to one peer, all of the first's length
// except a shorter last one, at most kMaxSegs and kMaxTrainBytes. Fills msgs[] (one per
// train: name, iovecs from iov[], and a UDP_SEGMENT cmsg when it has 2+ segments) and
// returns how many. Inputs: n replies, reply i = iov[i], its peer peers[peer_of[i]].
// ctl must hold n * kGsoCtl bytes. Replies stay where they are (the iovecs point at them).
uint32_t make_trains(uint32_t n, iovec* iov, const uint32_t* peer_of, sockaddr_in* peers,
                     mmsghdr* msgs, unsigned char* ctl, bool gso);

// Sends trains[0..n) with sendmmsg until done or the socket refuses (the rest dropped, as
// a NIC would); returns the datagrams sent (a train's iovecs). *calls counts sendmmsg calls.
uint32_t send_trains(int fd, mmsghdr* trains, uint32_t n, uint64_t* calls);

// The RTP relay benchmark's sessions file: a line "a.b.c.d:port a.b.c.d:port" (side A,
// side B) per session; blank lines skipped. False, with *err, on an unreadable file or a
// bad line.
bool read_session_pairs(const std::string& path,
                        std::vector<std::pair<dp::Endpoint, dp::Endpoint>>* out, std::string* err);

}  // namespace cw::ref
