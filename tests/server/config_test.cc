// Config parsing and validation: defaults, every error names its key and line, command-line
// overrides win, sizes and durations, the shipped example parses.
#include "app/server/config.hh"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

namespace cw::server {
namespace {

uint32_t ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

std::string error_of(std::string_view toml) {
  auto r = parse_config(toml, "t.toml");
  if (r) {
    auto f = finalize(r.value());
    return f ? "" : f.error().message;
  }
  return r.error().message;
}

TEST(Config, BuiltInDefault) {
  ServerConfig c = default_config();
  EXPECT_EQ(c.backend, "auto");
  EXPECT_EQ(c.io.workers, 1u);
  EXPECT_TRUE(c.io.cores.empty());
  EXPECT_FALSE(c.io.busy_poll);
  EXPECT_EQ(c.listen_be, ip("127.0.0.1"));
  EXPECT_EQ(c.io.max_conns, 16384u);
  EXPECT_EQ(c.io.conn_out_limit, 4u << 20);
  EXPECT_EQ(c.io.idle_timeout_ms, 300'000u);
  EXPECT_EQ(c.log_level, "info");
  ASSERT_EQ(c.services.size(), 3u);
  EXPECT_EQ(c.services[0].name, "sockperf-echo");
  EXPECT_EQ(c.services[0].udp->port, 11111);
  EXPECT_EQ(c.services[0].tcp->port, 11111);
  EXPECT_EQ(c.services[1].name, "echo");
  EXPECT_EQ(c.services[1].udp->port, 11112);
  EXPECT_EQ(c.services[1].tcp->port, 11112);
  EXPECT_EQ(dp::to_string(c.endpoint(*c.services[1].tcp)), "127.0.0.1:11112");
  EXPECT_EQ(c.services[2].name, "pubsub");
  EXPECT_FALSE(c.services[2].udp);
  EXPECT_EQ(c.services[2].tcp->port, 4222);
  EXPECT_TRUE(finalize(c));
}

TEST(Config, EmptyFileMeansDefaults) {
  auto r = parse_config("", "empty.toml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, "empty.toml");
  EXPECT_EQ(r->services.size(), 3u);
  EXPECT_EQ(r->listen_be, ip("127.0.0.1"));
  EXPECT_EQ(r->io.workers, 1u);
}

TEST(Config, NoCommandLineMeansBuiltIn) {
  const char* argv[] = {"corewire"};
  CommandLine cl = parse_command_line(1, argv);
  EXPECT_FALSE(cl.exit_code);
  auto r = load(cl);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, "<built-in default>");
  EXPECT_EQ(r->services.size(), 3u);
}

TEST(Config, ExampleFileParsesAndMatchesDefaults) {
  auto r = load_config_file(CW_SOURCE_ROOT "/docs/corewire.example.toml");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(finalize(r.value())) << "example must finalize";
  ServerConfig d = default_config();
  EXPECT_EQ(r->backend, d.backend);
  EXPECT_EQ(r->io.workers, d.io.workers);
  EXPECT_EQ(r->io.conn_out_limit, d.io.conn_out_limit);
  EXPECT_EQ(r->io.idle_timeout_ms, d.io.idle_timeout_ms);
  EXPECT_EQ(r->io.rx_buffers, d.io.rx_buffers);
  EXPECT_EQ(r->io.rx_buffer_size, d.io.rx_buffer_size);
  EXPECT_EQ(r->io.tx_buffers, d.io.tx_buffers);
  EXPECT_EQ(r->loop.burst, d.loop.burst);
  EXPECT_EQ(r->io.coalesce_us, d.io.coalesce_us);
  EXPECT_TRUE(r->io.udp_gso);
  EXPECT_TRUE(r->io.udp_gro);
  EXPECT_TRUE(r->deprecations.empty()) << r->deprecations[0];
  ASSERT_EQ(r->services.size(), 3u);
  EXPECT_EQ(describe(r.value()).back(), describe(d).back());
  // The installed conffile too.
  auto installed = load_config_file(CW_SOURCE_ROOT "/tools/corewire.toml");
  ASSERT_TRUE(installed) << installed.error().message;
  EXPECT_TRUE(installed->deprecations.empty());
}

TEST(Config, FullFile) {
  auto r = parse_config(R"(
[runtime]
backend = "epoll"
cores = [0]
busy_poll = true
listen = "0.0.0.0"
max_conns = 100
conn_out_limit = 65536
worker_out_limit = "8MiB"
conn_low_water = "16KiB"
stream_buffer_limit = "32MiB"
max_timers = 1000
idle_timeout = "2m"
rx_buffers = 1024
rx_buffer_size = "4KiB"
tx_buffers = 512
burst = 32
coalesce = "50us"
udp_gso = false
udp_gro = false
[log]
level = "debug"
[[service]]
name = "echo"
udp = "127.0.0.2:7000"
[[service]]
name = "sockperf-echo"
tcp = 0
)",
                        "full.toml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->backend, "epoll");
  EXPECT_EQ(r->io.cores, std::vector<int>{0});
  EXPECT_EQ(r->io.workers, 1u);
  EXPECT_TRUE(r->io.busy_poll);
  EXPECT_EQ(r->listen_be, 0u);
  EXPECT_EQ(r->io.max_conns, 100u);
  EXPECT_EQ(r->io.conn_out_limit, 65536u);
  EXPECT_EQ(r->io.worker_out_limit, 8u << 20);
  EXPECT_EQ(r->io.conn_low_water, 16u << 10);
  EXPECT_EQ(r->loop.tail_bytes, 32u << 20);
  EXPECT_EQ(r->loop.max_timers, 1000u);
  EXPECT_EQ(r->io.idle_timeout_ms, 120'000u);
  EXPECT_EQ(r->io.rx_buffers, 1024u);
  EXPECT_EQ(r->io.rx_buffer_size, 4096u);
  EXPECT_EQ(r->io.tx_buffers, 512u);
  EXPECT_EQ(r->loop.burst, 32u);
  EXPECT_EQ(r->io.coalesce_us, 50u);
  EXPECT_FALSE(r->io.udp_gso);
  EXPECT_FALSE(r->io.udp_gro);
  EXPECT_EQ(r->log_level, "debug");
  ASSERT_EQ(r->services.size(), 2u);
  EXPECT_FALSE(r->services[0].tcp);
  EXPECT_EQ(dp::to_string(r->endpoint(*r->services[0].udp)), "127.0.0.2:7000");
  EXPECT_FALSE(r->services[1].udp);
  EXPECT_EQ(dp::to_string(r->endpoint(*r->services[1].tcp)), "0.0.0.0:0");
  EXPECT_EQ(r->services[1].tcp->line, 28);
  EXPECT_TRUE(finalize(r.value()));
}

TEST(Config, WorkersUnpinned) {
  auto r = parse_config("[runtime]\nworkers = 3\n", "w.toml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->io.workers, 3u);
  EXPECT_TRUE(r->io.cores.empty());
}

// Each bad config yields "<file>:<line>: <key>: ..." naming the right place.
struct BadCase {
  const char* toml;
  const char* prefix;  // expected start of the message
  const char* detail;  // expected somewhere after it
};

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, NamesKeyAndLine) {
  const BadCase& c = GetParam();
  const std::string m = error_of(c.toml);
  ASSERT_FALSE(m.empty()) << "accepted: " << c.toml;
  EXPECT_EQ(m.rfind(c.prefix, 0), 0u) << m;
  EXPECT_NE(m.find(c.detail), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadConfig,
    ::testing::Values(
        BadCase{"[runtime]\nbakend = \"epoll\"\n", "t.toml:2: runtime.bakend: ", "unknown key"},
        BadCase{"[runtim]\nbackend = \"epoll\"\n", "t.toml:1: runtim: ", "unknown section"},
        BadCase{"\n\nfoo = 1\n", "t.toml:3: foo: ", "unknown section"},
        BadCase{"[log]\nlevel = \"info\"\nlevle = \"x\"\n", "t.toml:3: log.levle: ", "unknown key"},
        BadCase{"[[service]]\nname = \"echo\"\nudp = 1\nudpp = 2\n",
                "t.toml:4: service[0].udpp: ", "unknown key"},
        BadCase{"[runtime]\nbackend = \"dpdk2\"\n",
                "t.toml:2: runtime.backend: ", "unknown backend"},
        BadCase{"[runtime]\nbackend = 1\n",
                "t.toml:2: runtime.backend: ", "expected a string, got an integer"},
        BadCase{"[runtime]\nworkers = \"2\"\n",
                "t.toml:2: runtime.workers: ", "expected an integer"},
        BadCase{"[runtime]\nworkers = 0\n", "t.toml:2: runtime.workers: ", "out of range"},
        BadCase{"[runtime]\nworkers = 100000\n", "t.toml:2: runtime.workers: ", "out of range"},
        BadCase{"[runtime]\ncores = 1\n", "t.toml:2: runtime.cores: ", "expected an array"},
        BadCase{"[runtime]\ncores = []\n", "t.toml:2: runtime.cores: ", "empty"},
        BadCase{"[runtime]\ncores = [-1]\n", "t.toml:2: runtime.cores: ", "out of range"},
        BadCase{"[runtime]\ncores = [0, 0]\n", "t.toml:2: runtime.cores: ", "listed twice"},
        BadCase{"[runtime]\ncores = [\"a\"]\n", "t.toml:2: runtime.cores: ", "expected an integer"},
        BadCase{"[runtime]\ncores = [1023]\n", "t.toml:2: runtime.cores: ", "not available"},
        BadCase{"[runtime]\ncores = [0]\nworkers = 2\n", "t.toml:3: runtime.workers: ", "not both"},
        BadCase{"[runtime]\nbusy_poll = \"yes\"\n", "t.toml:2: runtime.busy_poll: ", "boolean"},
        BadCase{"[runtime]\nlisten = \"localhost\"\n",
                "t.toml:2: runtime.listen: ", "not an IPv4 address"},
        BadCase{"[runtime]\nlisten = \"1.2.3.256\"\n", "t.toml:2: runtime.listen: ", "IPv4"},
        BadCase{"[runtime]\nmax_conns = 0\n", "t.toml:2: runtime.max_conns: ", "out of range"},
        BadCase{"[runtime]\nmax_conns = 16777217\n",
                "t.toml:2: runtime.max_conns: ", "out of range"},
        BadCase{"[runtime]\nconn_out_limit = \"4 parsecs\"\n",
                "t.toml:2: runtime.conn_out_limit: ", "not a size"},
        BadCase{"[runtime]\nconn_out_limit = 100\n",
                "t.toml:2: runtime.conn_out_limit: ", "out of range"},
        BadCase{"[runtime]\nconn_out_limit = \"2GiB\"\n",
                "t.toml:2: runtime.conn_out_limit: ", "out of range"},
        BadCase{"[runtime]\nconn_out_limit = -5\n",
                "t.toml:2: runtime.conn_out_limit: ", "out of range"},
        BadCase{"[runtime]\nconn_low_water = \"4MiB\"\n",
                "t.toml:2: runtime.conn_low_water: ", "not below conn_out_limit"},
        BadCase{"[runtime]\nworker_out_limit = 100\n",
                "t.toml:2: runtime.worker_out_limit: ", "out of range"},
        BadCase{"[runtime]\nstream_buffer_limit = \"1KiB\"\n",
                "t.toml:2: runtime.stream_buffer_limit: ", "out of range"},
        BadCase{"[runtime]\nmax_timers = 0\n", "t.toml:2: runtime.max_timers: ", "out of range"},
        BadCase{"[runtime]\nidle_timeout = \"300\"\n",
                "t.toml:2: runtime.idle_timeout: ", "not a duration"},
        BadCase{"[runtime]\nidle_timeout = \"3 fortnights\"\n",
                "t.toml:2: runtime.idle_timeout: ", "not a duration"},
        BadCase{"[runtime]\nidle_timeout = \"2d\"\n",
                "t.toml:2: runtime.idle_timeout: ", "not a duration"},
        BadCase{"[runtime]\nidle_timeout = \"25h\"\n",
                "t.toml:2: runtime.idle_timeout: ", "out of range"},
        BadCase{"[runtime]\nidle_timeout = 1.5\n",
                "t.toml:2: runtime.idle_timeout: ", "got a floating-point number"},
        BadCase{"[runtime]\nrx_buffers = 1000\n",
                "t.toml:2: runtime.rx_buffers: ", "not a power of two"},
        BadCase{"[runtime]\nrx_buffer_size = 100\n",
                "t.toml:2: runtime.rx_buffer_size: ", "out of range"},
        BadCase{"[runtime]\ntx_buffers = 1\n", "t.toml:2: runtime.tx_buffers: ", "out of range"},
        BadCase{"[runtime]\nburst = 0\n", "t.toml:2: runtime.burst: ", "out of range"},
        BadCase{"[runtime]\ncoalesce_us = 20000\n",
                "t.toml:2: runtime.coalesce_us: ", "out of range"},
        BadCase{"[runtime]\ncoalesce = \"20ms\"\n", "t.toml:2: runtime.coalesce: ",
                "20ms is out of range: must be a duration from 0 to 10ms"},
        BadCase{"[runtime]\ncoalesce = \"50usec\"\n",
                "t.toml:2: runtime.coalesce: ", "'50usec' is not a duration"},
        BadCase{"[runtime]\ncoalesce = \"500ns\"\n",
                "t.toml:2: runtime.coalesce: ", "finer than this key's resolution (1us)"},
        BadCase{"[runtime]\ncoalesce = 0.5\n",
                "t.toml:2: runtime.coalesce: ", "got a floating-point number"},
        BadCase{"[runtime]\ncoalesce = \"50us\"\ncoalesce_us = 50\n",
                "t.toml:3: runtime.coalesce_us: ", "give coalesce or its deprecated form"},
        BadCase{"[runtime]\ncoalesce_us = 50\ncoalesce = \"50us\"\n",
                "t.toml:2: runtime.coalesce_us: ", "not both"},
        BadCase{"[runtime]\ncoalesce_us = \"50us\"\n",
                "t.toml:2: runtime.coalesce_us: ", "expected an integer"},
        BadCase{"[runtime]\ncolaesce = \"50us\"\n", "t.toml:2: runtime.colaesce: ", "unknown key"},
        BadCase{"[runtime]\nidle_timeout = \"5 mins\"\n", "t.toml:2: runtime.idle_timeout: ",
                "not a duration (a number and a unit: ns, us, ms, s, m, h)"},
        BadCase{"[dpdk]\nfrag_timeout = \"0ms\"\n",
                "t.toml:2: dpdk.frag_timeout: ", "out of range"},
        BadCase{"[dpdk]\nfrag_timeout = \"61s\"\n",
                "t.toml:2: dpdk.frag_timeout: ", "out of range"},
        BadCase{"[dpdk]\nfrag_timeout_ms = 0\n",
                "t.toml:2: dpdk.frag_timeout_ms: ", "out of range"},
        BadCase{"[dpdk]\nfrag_timout = \"1s\"\n", "t.toml:2: dpdk.frag_timout: ", "unknown key"},
        BadCase{"[log]\nlevel = \"loud\"\n", "t.toml:2: log.level: ", "unknown level"},
        BadCase{"runtime = 5\n", "t.toml:1: runtime: ", "expected a table"},
        BadCase{"log = \"x\"\n", "t.toml:1: log: ", "expected a table"},
        BadCase{"[service]\nname = \"echo\"\n", "t.toml:1: service: ", "array of tables"},
        BadCase{
            "[[service]]\nname = \"ehco\"\nudp = 1\n", "t.toml:2: service[0].name: ",
            "unknown service 'ehco' (known: sockperf-echo, echo, kv, pubsub, rtp, swarm, peer)"},
        // kv's own keys (docs/configuration.md).
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nmemory_limt = \"1MiB\"\n",
                "t.toml:4: service[0].memory_limt: ",
                "unknown key (known: name, udp, tcp, "
                "enabled, memory_limit, item_size_max, warm_restart_file, udp_public, "
                "udp_reply_factor, udp_trusted, udp_tcp_trust, pipeline_depth, cluster)"},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nmemory_limit = \"2MiB\"\n",
                "t.toml:4: service[0].memory_limit: ", "must hold at least 4 item_size_max pages"},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nitem_size_max = 512\n",
                "t.toml:4: service[0].item_size_max: ", "out of range"},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\npipeline_depth = 0\n",
                "t.toml:4: service[0].pipeline_depth: ", "out of range"},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nudp_public = 1\n",
                "t.toml:4: service[0].udp_public: ", "got an integer"},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nudp_trusted = [\"10.0.0.0/33\"]\n",
                "t.toml:4: service[0].udp_trusted: ", "'10.0.0.0/33' is not \"a.b.c.d/len\""},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nudp_trusted = \"10.0.0.0/8\"\n",
                "t.toml:4: service[0].udp_trusted: ", "an array of strings"},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nudp_tcp_trust = \"2d\"\n",
                "t.toml:4: service[0].udp_tcp_trust: ", "not a duration"},
        BadCase{"[[service]]\nname = \"kv\"\ntcp = 1\nwarm_restart_file = \"/tmp/\"\n",
                "t.toml:4: service[0].warm_restart_file: ", "must name a file"},
        // rtp's own keys (docs/configuration.md, docs/rtp.md).
        BadCase{"[[service]]\nname = \"rtp\"\nudp = 1\nmode = \"x\"\npeer = \"127.0.0.1:5\"\n",
                "t.toml:4: service[0].mode: ", "expected \"endpoint\" or \"relay\""},
        BadCase{"[[service]]\nname = \"rtp\"\nudp = 1\npeer = \"1.2.3.4\"\n",
                "t.toml:4: service[0].peer: ", "expected \"a.b.c.d:port\""},
        BadCase{"[[service]]\nname = \"rtp\"\nudp = 1\npeer = \"127.0.0.1:5\"\npt = 72\n",
                "t.toml:5: service[0].pt: ", "collide with RTCP"},
        BadCase{"[[service]]\nname = \"rtp\"\nudp = 1\npeer = \"127.0.0.1:5\"\n"
                "inject_loss = 1001\n",
                "t.toml:5: service[0].inject_loss: ", "out of range"},
        // rtp pins its sessions to `worker` without opening a socket: it needs `udp`.
        BadCase{"[[service]]\nname = \"rtp\"\npeer = \"127.0.0.1:5\"\n",
                "t.toml:1: service[0]: ", "serves nothing"},
        // swarm's own keys (docs/swarm.md): its torrents are read when the config is.
        BadCase{"[[service]]\nname = \"swarm\"\ntcp = 1\n",
                "t.toml:1: service[0].torrents: ", "required"},
        BadCase{"[[service]]\nname = \"swarm\"\ntcp = 1\ntorrents = [\"/nonexistent/x.torrent\"]\n",
                "t.toml:4: service[0].torrents: ", "/nonexistent/x.torrent: cannot open"},
        // peer's own keys (docs/cluster.md): its certificate, key and CA are loaded.
        BadCase{"[[service]]\nname = \"peer\"\nudp = 1\n",
                "t.toml:1: service[0].cert: ", "required"},
        BadCase{"[[service]]\nname = \"peer\"\nudp = 1\ncert = \"/nonexistent/n.pem\"\n"
                "key = \"/nonexistent/n.key\"\nca = \"/nonexistent/ca.pem\"\n",
                "t.toml:4: service[0].cert: ", "ca \"/nonexistent/ca.pem\""},
        BadCase{"[[service]]\nname = \"peer\"\nudp = 1\npeers = [\"10.0.0.1\"]\n",
                "t.toml:4: service[0].peers: ", "expected \"a.b.c.d:port\""},
        BadCase{"[[service]]\nname = \"peer\"\nudp = 1\nkeepalive = \"40s\"\n",
                "t.toml:4: service[0].keepalive: ", "must be below idle_timeout"},
        BadCase{"[[service]]\nname = \"rtp\"\nudp = 1\nmax_sessions = 100001\n",
                "t.toml:4: service[0].max_sessions: ", "out of range"},
        // A relay needs its pair unless it takes pairs at run time; then a lone side is an error.
        BadCase{"[[service]]\nname = \"rtp\"\nudp = 1\nmode = \"relay\"\n",
                "t.toml:1: service[0].peer: ", "required"},
        BadCase{"[[service]]\nname = \"rtp\"\nudp = 1\nmode = \"relay\"\nmax_sessions = 4\n"
                "peer = \"127.0.0.1:5\"\n",
                "t.toml:1: service[0].peer_b: ", "required"},
        BadCase{"[[service]]\nudp = 1\n", "t.toml:1: service[0].name: ", "missing"},
        BadCase{"[[service]]\nname = \"echo\"\n", "t.toml:1: service[0]: ", "serves nothing"},
        BadCase{"[[service]]\nname = \"echo\"\nudp = 70000\n",
                "t.toml:3: service[0].udp: ", "out of range"},
        BadCase{"[[service]]\nname = \"echo\"\ntcp = \"1.2.3.4\"\n",
                "t.toml:3: service[0].tcp: ", "not a port"},
        BadCase{"[[service]]\nname = \"echo\"\ntcp = true\n",
                "t.toml:3: service[0].tcp: ", "got a boolean"},
        BadCase{"[[service]]\nname = \"echo\"\nudp = 5000\n[[service]]\nname = \"sockperf-echo\"\n"
                "udp = 5000\n",
                "t.toml:6: service[1].udp: ", "already used by service[0] (echo) on line 3"},
        BadCase{"[runtime]\nlisten = \"0.0.0.0\"\n[[service]]\nname = \"echo\"\ntcp = 5000\n"
                "[[service]]\nname = \"echo\"\ntcp = \"127.0.0.1:5000\"\n",
                "t.toml:8: service[1].tcp: ", "already used"},
        BadCase{"[dpdk]\nprot = \"x\"\n", "t.toml:2: dpdk.prot: ", "unknown key"},
        BadCase{"[dpdk]\naddresses = [\"10.0.0.300/24\"]\n",
                "t.toml:2: dpdk.addresses: ", "not \"a.b.c.d/len\""},
        BadCase{"[dpdk]\naddresses = [\"10.0.0.2/33\"]\n",
                "t.toml:2: dpdk.addresses: ", "a.b.c.d/len"},
        BadCase{"[dpdk]\naddresses = []\n", "t.toml:2: dpdk.addresses: ", "1 to 8"},
        BadCase{"[dpdk]\neal = \"--no-huge\"\n", "t.toml:2: dpdk.eal: ", "array of strings"},
        BadCase{"[dpdk]\neal = [1]\n", "t.toml:2: dpdk.eal: ", "expected a string"},
        BadCase{"[dpdk]\nmtu = 100\n", "t.toml:2: dpdk.mtu: ", "out of range"},
        BadCase{"[dpdk]\ngateway = \"gw\"\n", "t.toml:2: dpdk.gateway: ", "IPv4"},
        BadCase{"[runtime]\nbackend = \"dpdk\"\n[dpdk]\naddresses = [\"10.0.0.2/24\"]\n",
                "t.toml:3: dpdk.port: ", "needs [dpdk] port"},
        BadCase{"[runtime]\nbackend = \"dpdk\"\n[dpdk]\nport = \"net_tap0\"\n",
                "t.toml:3: dpdk.addresses: ", "needs [dpdk] addresses"},
        BadCase{"[runtime\nbackend = 1\n", "t.toml:1: syntax: ", ""},
        BadCase{"[runtime]\nbackend = \"a\"\nbackend = \"b\"\n", "t.toml:3: syntax: ", ""}));

TEST(Config, DpdkSection) {
  auto r = parse_config(R"([runtime]
backend = "dpdk"
[dpdk]
eal = ["--no-huge", "-m", "512"]
port = "net_tap0,iface=cwt0"
addresses = ["10.99.0.2/24", "10.99.1.2"]
gateway = "10.99.0.1"
mtu = 9000
rx_desc = 512
arp_learn_from_requests = false
frag_timeout = "500ms"
)",
                        "d.toml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->backend, "dpdk");
  EXPECT_EQ(r->dpdk.line, 3);
  EXPECT_EQ(r->dpdk.eal, (std::vector<std::string>{"--no-huge", "-m", "512"}));
  EXPECT_EQ(r->dpdk.port, "net_tap0,iface=cwt0");
  EXPECT_EQ(r->dpdk.addresses, (std::vector<std::string>{"10.99.0.2/24", "10.99.1.2"}));
  EXPECT_EQ(r->dpdk.gateway_be, ip("10.99.0.1"));
  EXPECT_EQ(r->dpdk.mtu, 9000u);
  EXPECT_EQ(r->dpdk.rx_desc, 512u);
  EXPECT_FALSE(r->dpdk.tx_desc);  // unset: the backend's default
  EXPECT_EQ(r->dpdk.arp_learn_from_requests, false);
  EXPECT_EQ(r->dpdk.frag_timeout_ms, 500u);
  Overrides o;
  o.eal_extra = {"--file-prefix", "x"};
  ASSERT_TRUE(apply_overrides(r.value(), o));
  ASSERT_TRUE(finalize(r.value()));
  // The built-in pubsub has no auth: not served on a public address, with a warning.
  ASSERT_EQ(r->services.size(), 2u);
  ASSERT_EQ(r->deprecations.size(), 1u);
  EXPECT_EQ(r->deprecations[0],
            "built-in service pubsub on 10.99.0.2:4222: serves an address that is not loopback "
            "without auth: set user and password, token, or allow_anonymous = true; it is not "
            "served");
  EXPECT_EQ(r->dpdk.eal.size(), 5u);
  EXPECT_EQ(r->dpdk.eal.back(), "x");
  EXPECT_NE(describe(r.value())[2].find("dpdk: port net_tap0,iface=cwt0"), std::string::npos);
  // Services default to the first DPDK address, not the kernel's loopback.
  EXPECT_EQ(dp::to_string(r->endpoint(*r->services[0].udp)), "10.99.0.2:11111");
  // Without backend dpdk the section is parsed and checked but not required.
  auto e = parse_config("[dpdk]\nmtu = 1500\n", "e.toml");
  ASSERT_TRUE(e);
  EXPECT_TRUE(finalize(e.value()));
}

TEST(Config, SamePortOnOtherTransportOrAddressIsFine) {
  EXPECT_EQ(
      error_of("[[service]]\nname = \"echo\"\nudp = 5000\ntcp = 5000\n"
               "[[service]]\nname = \"echo\"\nudp = \"127.0.0.2:5000\"\n"
               "[[service]]\nname = \"echo\"\nudp = 0\n[[service]]\nname = \"echo\"\nudp = 0\n"),
      "");
}

TEST(Config, SizesAndDurations) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("4MiB"), 4u << 20);
  EXPECT_EQ(parse_size("4 MiB"), 4u << 20);
  EXPECT_EQ(parse_size("64k"), 65536u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("1KB"), 1000u);
  EXPECT_EQ(parse_size("1GiB"), 1u << 30);
  EXPECT_EQ(parse_size("2GB"), 2'000'000'000u);
  EXPECT_EQ(parse_size("7B"), 7u);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("MiB"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("1.5MiB"));
  EXPECT_FALSE(parse_size("99999999999999999999GiB"));
  EXPECT_FALSE(parse_size("17179869184GiB"));  // overflows 64 bits
  EXPECT_EQ(parse_duration_ms("0"), 0u);
  EXPECT_EQ(parse_duration_ms("250ms"), 250u);
  EXPECT_EQ(parse_duration_ms("300s"), 300'000u);
  EXPECT_EQ(parse_duration_ms("5m"), 300'000u);
  EXPECT_EQ(parse_duration_ms("5min"), 300'000u);
  EXPECT_EQ(parse_duration_ms("2h"), 7'200'000u);
  EXPECT_FALSE(parse_duration_ms("300"));
  EXPECT_FALSE(parse_duration_ms("s"));
  EXPECT_FALSE(parse_duration_ms("1d"));
  auto r = parse_config("[runtime]\nidle_timeout = 0\nconn_out_limit = \"1GiB\"\n", "t");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->io.idle_timeout_ms, 0u);
  EXPECT_EQ(r->io.conn_out_limit, 1u << 30);
  r = parse_config("[runtime]\nidle_timeout = 60\n", "t");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->io.idle_timeout_ms, 60'000u);
}

// Every duration key takes a unit string; the old integer keys with a unit suffix still work,
// each with one deprecation naming its replacement and the value written the new way.
TEST(Config, DurationKeysNewAndDeprecatedForms) {
  auto r = parse_config(
      "[runtime]\nidle_timeout = \"90s\"\ncoalesce = \"1ms\"\n[dpdk]\nfrag_timeout = \"2s\"\n"
      "[control]\npublish = \"20ms\"\ndrain_timeout = \"1m\"\n",
      "new.toml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->io.idle_timeout_ms, 90'000u);
  EXPECT_EQ(r->io.coalesce_us, 1000u);
  EXPECT_EQ(r->dpdk.frag_timeout_ms, 2000u);
  EXPECT_EQ(r->control.publish_ms, 20u);
  EXPECT_EQ(r->control.drain_timeout_ms, 60'000u);
  EXPECT_TRUE(r->deprecations.empty());

  auto o = parse_config(
      "[runtime]\ncoalesce_us = 1000\n[dpdk]\nfrag_timeout_ms = 2000\n"
      "[control]\npublish_ms = 20\ndrain_timeout_ms = 60000\n",
      "old.toml");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->io.coalesce_us, r->io.coalesce_us);
  EXPECT_EQ(o->dpdk.frag_timeout_ms, r->dpdk.frag_timeout_ms);
  EXPECT_EQ(o->control.publish_ms, r->control.publish_ms);
  EXPECT_EQ(o->control.drain_timeout_ms, r->control.drain_timeout_ms);
  std::vector<std::string> got = o->deprecations;  // in the order toml++ lists the keys
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got,
            (std::vector<std::string>{
                "old.toml: control.drain_timeout_ms is deprecated: write drain_timeout = "
                "\"1m\"",
                "old.toml: control.publish_ms is deprecated: write publish = \"20ms\"",
                "old.toml:2: runtime.coalesce_us is deprecated: write coalesce = \"1ms\"",
                "old.toml:4: dpdk.frag_timeout_ms is deprecated: write frag_timeout = \"2s\""}));
  // Integer seconds stay a duration everywhere; "0" needs no unit.
  auto i = parse_config("[runtime]\nidle_timeout = 60\ncoalesce = \"0\"\n", "i.toml");
  ASSERT_TRUE(i) << i.error().message;
  EXPECT_EQ(i->io.idle_timeout_ms, 60'000u);
  EXPECT_EQ(i->io.coalesce_us, 0u);
}

TEST(Config, CoreList) {
  std::string err;
  EXPECT_EQ(parse_core_list("1", err), std::vector<int>{1});
  EXPECT_EQ(parse_core_list("0,2,3", err), (std::vector<int>{0, 2, 3}));
  EXPECT_FALSE(parse_core_list("", err));
  EXPECT_FALSE(parse_core_list("1,", err));
  EXPECT_FALSE(parse_core_list("a", err));
  EXPECT_FALSE(parse_core_list("-1", err));
  EXPECT_FALSE(parse_core_list("1,1", err));
  EXPECT_NE(err.find("twice"), std::string::npos);
  EXPECT_FALSE(parse_core_list("5000", err));
}

TEST(Config, OverridesWinOverFile) {
  auto r = parse_config(R"([runtime]
backend = "io_uring"
cores = [0]
listen = "127.0.0.1"
busy_poll = true
[log]
level = "warn"
[[service]]
name = "echo"
udp = 4000
tcp = "127.0.0.3:4001"
)",
                        "f.toml");
  ASSERT_TRUE(r) << r.error().message;
  Overrides o;
  o.backend = "epoll";
  o.workers = 2;
  o.listen = "0.0.0.0";
  o.busy_poll = false;
  o.log_level = "debug";
  ASSERT_TRUE(apply_overrides(r.value(), o));
  ASSERT_TRUE(finalize(r.value()));
  EXPECT_EQ(r->backend, "epoll");
  EXPECT_EQ(r->io.workers, 2u);
  EXPECT_TRUE(r->io.cores.empty());
  EXPECT_FALSE(r->io.busy_poll);
  EXPECT_EQ(r->log_level, "debug");
  // --listen changes services that gave only a port; explicit addresses stay.
  EXPECT_EQ(dp::to_string(r->endpoint(*r->services[0].udp)), "0.0.0.0:4000");
  EXPECT_EQ(dp::to_string(r->endpoint(*r->services[0].tcp)), "127.0.0.3:4001");

  Overrides c;
  c.cores = "0";
  ASSERT_TRUE(apply_overrides(r.value(), c));
  EXPECT_EQ(r->io.cores, std::vector<int>{0});
  EXPECT_EQ(r->io.workers, 1u);
}

TEST(Config, BadOverridesNameTheFlag) {
  auto ov = [](auto set) {
    Overrides o;
    set(o);
    return o;
  };
  struct {
    Overrides o;
    const char* prefix;
  } cases[] = {
      {ov([](Overrides& o) { o.backend = "uring"; }), "command line: --backend: unknown backend"},
      {ov([](Overrides& o) { o.cores = "x"; }), "command line: --cores: 'x' is not a core number"},
      {ov([](Overrides& o) { o.workers = 0u; }), "command line: --workers: 0 is out of range"},
      {ov([](Overrides& o) { o.listen = "::1"; }),
       "command line: --listen: '::1' is not an IPv4 address"},
      {ov([](Overrides& o) { o.log_level = "chatty"; }),
       "command line: --log-level: unknown level"},
      {ov([](Overrides& o) {
         o.cores = "0";
         o.workers = 1u;
       }),
       "command line: --cores: give either"},
  };
  for (auto& c : cases) {
    ServerConfig cfg = default_config();
    auto r = apply_overrides(cfg, c.o);
    ASSERT_FALSE(r) << c.prefix;
    EXPECT_EQ(r.error().message.rfind(c.prefix, 0), 0u) << r.error().message;
  }
  ServerConfig cfg = default_config();
  Overrides o;
  o.cores = "1023";
  ASSERT_TRUE(apply_overrides(cfg, o));
  auto f = finalize(cfg);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().message.rfind("command line: --cores: core 1023 is not available", 0), 0u)
      << f.error().message;
}

TEST(Config, CommandLine) {
  const char* argv[] = {"corewire",       "-c",          "x.toml",   "--backend", "epoll",
                        "--cores",        "0,1",         "--listen", "0.0.0.0",   "--busy-poll",
                        "--check-config", "--log-level", "debug"};
  CommandLine cl = parse_command_line(int(std::size(argv)), argv);
  ASSERT_FALSE(cl.exit_code) << cl.output;
  EXPECT_EQ(cl.config_path, "x.toml");
  EXPECT_TRUE(cl.check_only);
  EXPECT_EQ(cl.overrides.backend, "epoll");
  EXPECT_EQ(cl.overrides.cores, "0,1");
  EXPECT_FALSE(cl.overrides.workers);
  EXPECT_EQ(cl.overrides.listen, "0.0.0.0");
  EXPECT_EQ(cl.overrides.busy_poll, true);
  EXPECT_EQ(cl.overrides.log_level, "debug");

  const char* nb[] = {"corewire", "--no-busy-poll", "--workers", "3"};
  cl = parse_command_line(4, nb);
  ASSERT_FALSE(cl.exit_code) << cl.output;
  EXPECT_EQ(cl.overrides.busy_poll, false);
  EXPECT_EQ(cl.overrides.workers, 3u);

  const char* help[] = {"corewire", "--help"};
  cl = parse_command_line(2, help);
  EXPECT_EQ(cl.exit_code, 0);
  EXPECT_NE(cl.output.find("--backend"), std::string::npos);
  EXPECT_NE(cl.output.find("--check-config"), std::string::npos);

  const char* ver[] = {"corewire", "--version"};
  cl = parse_command_line(2, ver);
  EXPECT_EQ(cl.exit_code, 0);
  EXPECT_EQ(cl.output.rfind("corewire ", 0), 0u) << cl.output;

  const char* eal[] = {"corewire", "--backend", "dpdk", "--", "--no-huge", "-m", "512"};
  cl = parse_command_line(int(std::size(eal)), eal);
  ASSERT_FALSE(cl.exit_code) << cl.output;
  EXPECT_EQ(cl.overrides.backend, "dpdk");
  EXPECT_EQ(cl.overrides.eal_extra, (std::vector<std::string>{"--no-huge", "-m", "512"}));

  const char* bad[] = {"corewire", "--bakend", "epoll"};
  cl = parse_command_line(3, bad);
  EXPECT_EQ(cl.exit_code, 2);
  EXPECT_NE(cl.output.find("--bakend"), std::string::npos) << cl.output;

  const char* badw[] = {"corewire", "--workers", "many"};
  cl = parse_command_line(3, badw);
  EXPECT_EQ(cl.exit_code, 2);
}

TEST(Config, LoadFromFileAndMissingFile) {
  char path[] = "/tmp/cw_config_testXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream f(path);
    f << "[runtime]\nworkers = 2\n[[service]]\nname = \"echo\"\nudp = 0\n";
  }
  CommandLine cl;
  cl.config_path = path;
  cl.overrides.backend = "epoll";
  auto r = load(cl);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, path);
  EXPECT_EQ(r->io.workers, 2u);
  EXPECT_EQ(r->backend, "epoll");
  ASSERT_EQ(r->services.size(), 1u);
  EXPECT_EQ(describe(r.value()).size(), 3u);
  std::remove(path);

  cl.config_path = "/nonexistent/corewire.toml";
  r = load(cl);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("/nonexistent/corewire.toml: cannot open", 0), 0u)
      << r.error().message;
}

}  // namespace
TEST(Config, LowWaterFollowsSmallOutLimit) {
  auto r = parse_config("[runtime]\nconn_out_limit = \"32KiB\"\n", "t.toml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->io.conn_low_water, 16u << 10);
  auto d = parse_config("", "t.toml");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->io.conn_low_water, 64u << 10);
}

}  // namespace cw::server

namespace cw::server {
namespace {

// pubsub's keys, and its refusal to serve without auth on an address that is not loopback.
TEST(Config, PubsubKeysAndListenCheck) {
  auto cfg = [](const std::string& svc) {
    return parse_config("[[service]]\nname = \"pubsub\"\n" + svc, "p.toml");
  };
  auto r = cfg("tcp = 4222\nmax_payload = \"64KiB\"\nping_interval = \"30s\"\ntoken = \"t\"\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->services[0].own_keys, "max_payload='64KiB' ping_interval='30s' token=(set)");
  EXPECT_TRUE(finalize(r.value()));
  r = cfg("tcp = \"0.0.0.0:4222\"\n");
  ASSERT_TRUE(r) << r.error().message;
  auto f = finalize(r.value());
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("p.toml:3: service[0].tcp: pubsub on 0.0.0.0:4222: serves an "
                                   "address that is not loopback without auth"),
            std::string::npos)
      << f.error().message;
  for (const char* ok :
       {"token = \"t\"\n", "user = \"u\"\npassword = \"p\"\n", "allow_anonymous = true\n"}) {
    r = cfg(std::string("tcp = \"0.0.0.0:4222\"\n") + ok);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(finalize(r.value())) << ok;
  }
  r = cfg("tcp = 4222\nuser = \"u\"\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("service[0].user: user and password go together"),
            std::string::npos)
      << r.error().message;
  r = cfg("tcp = 4222\nmax_payload = 0\n");
  EXPECT_FALSE(r);
}

}  // namespace
}  // namespace cw::server
