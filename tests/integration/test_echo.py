"""corewire end to end: echo in both dialects over UDP and TCP through plain sockets, bad
input on every port, a reader that never reads, backends, signals."""

import os
import signal
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SP, NT = "sockperf-echo", "echo"


class EchoTest(unittest.TestCase):
    """One server for the echo cases; each test checks it still serves afterwards."""

    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server(h.config('workers = 2\nconn_out_limit = "64KiB"\nidle_timeout = "0"'))
        cls.expect = []  # (counter group, counter) the tests that ran must have bumped

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        if code != 0:
            raise AssertionError(f"corewire exit {code}:\n{cls.srv.log()}")
        st = cls.srv.stats()
        for group, counter in cls.expect:
            if st.get(group, {}).get(counter, 0) < 1:
                raise AssertionError(f"counter {group}.{counter} not counted:\n{cls.srv.log()}")

    def tearDown(self):
        self.assertTrue(self.srv.alive(), "corewire died:\n" + self.srv.log())
        self.assert_serves()

    def assert_serves(self):
        """Every port still answers a well-formed request."""
        m = h.sockperf_msg(7, 64)
        self.assertEqual(h.udp_call(self.srv.ep(SP, "udp"), m), h.sockperf_reply_of(m))
        with h.tcp_connect(self.srv.ep(SP, "tcp")) as s:
            s.sendall(m)
            self.assertEqual(h.recv_exact(s, len(m)), h.sockperf_reply_of(m))
        req = h.native_msg(99, b"still alive")
        rep = h.native_parse(h.udp_call(self.srv.ep(NT, "udp"), req))
        self.assertEqual((rep["kind"], rep["req_id"], rep["payload"]), (h.NT_RESPONSE, 99, b"still alive"))
        with h.tcp_connect(self.srv.ep(NT, "tcp")) as s:
            s.sendall(req)
            rep = h.native_parse(h.recv_exact(s, len(req)))
            self.assertEqual((rep["kind"], rep["payload"]), (h.NT_RESPONSE, b"still alive"))

    # --- well-formed traffic ---------------------------------------------------------------

    def test_serving_lines_name_every_endpoint(self):
        for svc in (SP, NT):
            for t in ("udp", "tcp"):
                host, port = self.srv.ep(svc, t)
                self.assertEqual(host, "127.0.0.1")
                self.assertGreater(port, 0)

    def test_sockperf_udp_sizes(self):
        ep = self.srv.ep(SP, "udp")
        for size in (14, 15, 64, 1472, 9000, 65507):
            m = h.sockperf_msg(size, size)
            self.assertEqual(h.udp_call(ep, m), h.sockperf_reply_of(m), size)

    def test_sockperf_udp_no_reply_unless_asked(self):
        ep = self.srv.ep(SP, "udp")
        for flags in (h.SP_CLIENT, h.SP_PONG, h.SP_CLIENT | h.SP_PONG | h.SP_WARMUP):
            self.assertTrue(h.udp_no_reply(ep, h.sockperf_msg(1, 64, flags)), hex(flags))

    def test_sockperf_tcp_stream(self):
        with h.tcp_connect(self.srv.ep(SP, "tcp")) as s:
            msgs = [h.sockperf_msg(i, 14 + i * 37) for i in range(1, 40)]
            s.sendall(b"".join(msgs))  # many frames in one write
            want = b"".join(h.sockperf_reply_of(m) for m in msgs)
            self.assertEqual(h.recv_exact(s, len(want)), want)
            big = h.sockperf_msg(1000, 65507)
            s.sendall(big)
            self.assertEqual(h.recv_exact(s, len(big)), h.sockperf_reply_of(big))

    def test_tcp_frame_split_across_writes(self):
        with h.tcp_connect(self.srv.ep(SP, "tcp")) as s:
            m = h.sockperf_msg(5, 3000)
            for i in range(0, len(m), 700):  # header itself split too
                s.sendall(m[i:i + 700])
                time.sleep(0.02)
            self.assertEqual(h.recv_exact(s, len(m)), h.sockperf_reply_of(m))
        with h.tcp_connect(self.srv.ep(NT, "tcp")) as s:
            m = h.native_msg(77, b"x" * 5000)
            s.sendall(m[:10])
            time.sleep(0.05)
            s.sendall(m[10:])
            rep = h.native_parse(h.recv_exact(s, len(m)))
            self.assertEqual((rep["req_id"], rep["payload"]), (77, b"x" * 5000))

    def test_native_udp_echo(self):
        ep = self.srv.ep(NT, "udp")
        for n in (0, 1, 100, 1448, 65483):
            payload = bytes(i & 0xFF for i in range(n))
            rep = h.native_parse(h.udp_call(ep, h.native_msg(n + 1, payload)))
            self.assertEqual(rep["magic"], h.NT_MAGIC)
            self.assertEqual((rep["kind"], rep["service"], rep["req_id"]), (h.NT_RESPONSE, h.NT_ECHO, n + 1))
            self.assertEqual(rep["payload"], payload)

    def test_native_tcp_pipelined(self):
        with h.tcp_connect(self.srv.ep(NT, "tcp")) as s:
            reqs = [h.native_msg(i, bytes([i]) * i) for i in range(200)]
            s.sendall(b"".join(reqs))
            for i in range(200):
                hdr = h.recv_exact(s, h.NT_HEADER)
                rep = h.native_parse(hdr + h.recv_exact(s, h.native_parse(hdr)["len"]))
                self.assertEqual((rep["kind"], rep["req_id"], rep["payload"]), (h.NT_RESPONSE, i, bytes([i]) * i))

    def test_native_oneway_not_answered(self):
        self.assertTrue(h.udp_no_reply(self.srv.ep(NT, "udp"), h.native_msg(3, b"hi", kind=h.NT_ONEWAY)))

    # --- bad input ---------------------------------------------------------------------------

    GARBAGE = [b"", b"\x00", b"\xff" * 13, b"\xff" * 14, b"GET / HTTP/1.1\r\n\r\n", os.urandom(100),
               os.urandom(1472), b"\x00" * 9000, os.urandom(65507)]

    def test_udp_garbage_on_every_port(self):
        for svc in (SP, NT):
            ep = self.srv.ep(svc, "udp")
            with h.udp_socket() as s:
                for g in self.GARBAGE * 3:
                    s.sendto(g, ep)
        self.expect += [(SP, "malformed"), (NT, "malformed")]
        # Counted, not answered (amplification rule); service still fine (tearDown).

    def test_udp_truncated_and_oversized(self):
        sp = self.srv.ep(SP, "udp")
        m = h.sockperf_msg(1, 100)
        self.assertTrue(h.udp_no_reply(sp, m[:50]), "truncated sockperf datagram answered")
        bad = struct.pack(">QHI", 1, 3, 70000) + b"x" * 50  # length field beyond the maximum
        self.assertTrue(h.udp_no_reply(sp, bad))
        self.assertTrue(h.udp_no_reply(sp, struct.pack(">QHI", 1, 3, 5)))  # below the header
        nt = self.srv.ep(NT, "udp")
        # Whole header, payload shorter than announced: error `truncated` (code 6).
        rep = h.native_parse(h.udp_call(nt, h.native_msg(11, b"abc", length=100)))
        self.assertEqual((rep["kind"], rep["req_id"]), (h.NT_ERROR, 11))
        self.assertEqual(struct.unpack(">H", rep["payload"])[0], 6)
        # Payload length above the maximum: too_large (3).
        rep = h.native_parse(h.udp_call(nt, h.native_msg(12, b"", length=70000)))
        self.assertEqual((rep["kind"], struct.unpack(">H", rep["payload"])[0]), (h.NT_ERROR, 3))
        # Bad version: bad_version (1), with the server's version in the reply.
        rep = h.native_parse(h.udp_call(nt, h.native_msg(13, b"x", version=9)))
        self.assertEqual((rep["kind"], rep["version"], struct.unpack(">H", rep["payload"])[0]), (h.NT_ERROR, 1, 1))
        # Unknown service: unknown_service (4).
        rep = h.native_parse(h.udp_call(nt, h.native_msg(14, b"x", service=999)))
        self.assertEqual(struct.unpack(">H", rep["payload"])[0], 4)
        # Shorter than a header, wrong magic: never answered.
        self.assertTrue(h.udp_no_reply(nt, h.native_msg(15)[:10]))
        self.assertTrue(h.udp_no_reply(nt, h.native_msg(16, b"x", magic=0x1234)))

    def test_tcp_garbage_closes_connection(self):
        for svc, junk in ((SP, b"\xff" * 64), (SP, b"\x00" * 64), (NT, b"GET / HTTP/1.1\r\n\r\n"),
                          (NT, os.urandom(4096))):
            with h.tcp_connect(self.srv.ep(svc, "tcp")) as s:
                s.sendall(junk)
                self.assertTrue(h.wait_closed(s), f"{svc}: garbage did not close the connection")

    def test_tcp_oversized_frames_close(self):
        with h.tcp_connect(self.srv.ep(SP, "tcp")) as s:
            s.sendall(struct.pack(">QHI", 1, 3, 70000) + b"y" * 1000)
            self.assertTrue(h.wait_closed(s))
        self.expect.append((NT, "errors"))
        with h.tcp_connect(self.srv.ep(NT, "tcp")) as s:
            s.sendall(h.native_msg(21, b"", length=70000))
            rep = h.native_parse(h.recv_exact(s, h.NT_HEADER + 2))
            self.assertEqual((rep["kind"], rep["req_id"], struct.unpack(">H", rep["payload"])[0]), (h.NT_ERROR, 21, 3))
            self.assertTrue(h.wait_closed(s))

    def test_tcp_truncated_frame_then_close(self):
        for svc, m in ((SP, h.sockperf_msg(3, 1000)), (NT, h.native_msg(3, b"z" * 1000))):
            with h.tcp_connect(self.srv.ep(svc, "tcp")) as s:
                s.sendall(m[: len(m) // 2])
                s.shutdown(socket.SHUT_WR)  # the rest never comes
                self.assertTrue(h.wait_closed(s), f"{svc}: half a frame + FIN left the connection open")

    def test_many_connections_opened_and_dropped(self):
        socks = [h.tcp_connect(self.srv.ep(SP, "tcp")) for _ in range(200)]
        for i, s in enumerate(socks):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            s.close()

    def test_reader_that_never_reads_is_closed(self):
        """The client floods requests and never reads: the server must drop it at
        conn_out_limit (64 KiB here) instead of queueing without bound."""
        rss_before = self.srv.rss_kib()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
        s.settimeout(h.IO_TIMEOUT)
        s.connect(self.srv.ep(SP, "tcp"))
        msg = h.sockperf_msg(1, 16384) * 4
        sent, closed, deadline = 0, False, time.monotonic() + 30
        limit = 512 << 20  # bytes: far beyond every buffer involved
        s.settimeout(0.5)
        stalled = 0.0
        while sent < limit and time.monotonic() < deadline:
            try:
                sent += s.send(msg)
                stalled = 0.0
            except socket.timeout:
                stalled += 0.5
                if stalled >= 10:
                    break  # the server stopped reading but did not close either
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        s.close()
        self.assertTrue(closed, f"connection not closed after {sent} bytes sent (stalled {stalled}s)")
        self.expect.append(("io", "conns_overflow"))
        grown = self.srv.rss_kib() - rss_before
        self.assertLess(grown, 64 * 1024, f"server RSS grew by {grown} KiB")


class LifecycleTest(unittest.TestCase):
    def test_sigterm_and_sigint_stop_cleanly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            srv = h.Server(h.config())
            try:
                # Traffic in flight must not keep it from stopping.
                m = h.sockperf_msg(1, 64)
                h.udp_call(srv.ep(SP, "udp"), m)
                conn = h.tcp_connect(srv.ep(NT, "tcp"))
                srv.proc.send_signal(sig)
                code = srv.wait_exit(h.STOP_TIMEOUT)
                conn.close()
                self.assertEqual(code, 0, f"{sig.name}: exit {code}\n{srv.log()}")
                self.assertIn("stopped", srv.log())
                st = srv.stats()
                self.assertGreaterEqual(st[SP]["responses"], 1, srv.log())
            finally:
                srv.stop(signal.SIGKILL)

    def test_counters_count_bad_input(self):
        srv = h.Server(h.config())
        try:
            with h.udp_socket() as s:
                for _ in range(5):
                    s.sendto(b"\xff" * 20, srv.ep(SP, "udp"))
                    s.sendto(b"\xff" * 20, srv.ep(NT, "udp"))
            h.udp_call(srv.ep(SP, "udp"), h.sockperf_msg(1))  # after the garbage, in order
            h.udp_call(srv.ep(NT, "udp"), h.native_msg(1))
        finally:
            self.assertEqual(srv.stop(), 0, srv.log())
        st = srv.stats()
        self.assertEqual(st[SP]["malformed"], 5, srv.log())
        self.assertEqual(st[NT]["malformed"], 5, srv.log())
        self.assertEqual(st[SP]["responses"], 1)

    def test_exit_log_counts_batching(self):
        """The exit log's batching line: a pipelined TCP batch is answered in at least one
        and at most one send per message; polls >= bursts and items >= bursts."""
        srv = h.Server(h.config())
        n = 16
        try:
            with h.tcp_connect(srv.ep(SP, "tcp")) as s:
                msgs = [h.sockperf_msg(i, 64) for i in range(n)]
                s.sendall(b"".join(msgs))
                got = h.recv_exact(s, 64 * n)
                self.assertEqual(got, b"".join(h.sockperf_reply_of(m) for m in msgs))
        finally:
            self.assertEqual(srv.stop(), 0, srv.log())
        b = srv.stats().get("batching", {})
        self.assertGreaterEqual(b.get("tx_stream_sends", 0), 1, srv.log())
        self.assertLessEqual(b["tx_stream_sends"], n, srv.log())
        self.assertGreaterEqual(b["bursts"], 1, srv.log())
        self.assertGreaterEqual(b["items"], b["bursts"], srv.log())
        self.assertGreaterEqual(b["polls"], b["bursts"], srv.log())

    def test_idle_connection_closed(self):
        with h.Server(h.config('idle_timeout = "1s"')) as srv:
            with h.tcp_connect(srv.ep(SP, "tcp")) as s:
                self.assertTrue(h.wait_closed(s, timeout=15), "idle connection kept open")
            self.assertEqual(srv.stop(), 0)
            self.assertGreaterEqual(srv.stats()["io"]["conns_idle"], 1, srv.log())

    def test_fixed_ports_and_listen_override(self):
        # Ports the kernel just gave out are very likely free for a moment.
        ports = []
        for _ in range(2):
            with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", 0))
                u.bind(("127.0.0.1", t.getsockname()[1]))
                ports.append(t.getsockname()[1])
        svc = f'[[service]]\nname = "echo"\nudp = {ports[0]}\ntcp = {ports[1]}\n'
        with h.Server(h.config(services=svc), args=["--listen", "127.0.0.1"]) as srv:
            self.assertEqual(srv.ep(NT, "udp"), ("127.0.0.1", ports[0]))
            self.assertEqual(srv.ep(NT, "tcp"), ("127.0.0.1", ports[1]))
            self.assertNotIn((SP, "udp"), srv.endpoints)
            rep = h.native_parse(h.udp_call(srv.ep(NT, "udp"), h.native_msg(5, b"p")))
            self.assertEqual(rep["payload"], b"p")

    def test_bind_failure_exits_nonzero(self):
        svc = '[[service]]\nname = "echo"\nudp = "192.0.2.1:9"\n'  # TEST-NET: not ours
        srv = h.Server(h.config(services=svc), expect_start=False)
        code = srv.wait_exit(h.STOP_TIMEOUT)
        srv.stop()
        self.assertEqual(code, 1, srv.log())
        self.assertIn("cannot start", srv.log())
        self.assertIn("192.0.2.1", srv.log())

    def test_max_conns_rejects_beyond_limit(self):
        with h.Server(h.config("workers = 1\nmax_conns = 4")) as srv:
            ep = srv.ep(SP, "tcp")
            conns, closed = [], 0
            for _ in range(10):
                conns.append(h.tcp_connect(ep))  # the kernel completes the handshake anyway
                conns[-1].settimeout(2)
            m = h.sockperf_msg(3, 64)
            for s in conns:
                try:
                    s.sendall(m)
                    if h.recv_exact(s, len(m)) != h.sockperf_reply_of(m):
                        self.fail("wrong reply")
                except (AssertionError, ConnectionResetError, BrokenPipeError, socket.timeout):
                    closed += 1
            for s in conns:
                s.close()
            self.assertGreaterEqual(closed, 1, "all 10 connections served with max_conns = 4")
            self.assertLessEqual(closed, 6)
            m = h.sockperf_msg(4, 64)
            for _ in range(50):  # slots come back once those connections are closed
                s = h.tcp_connect(ep)
                s.settimeout(2)
                try:
                    s.sendall(m)
                    if h.recv_exact(s, len(m)) == h.sockperf_reply_of(m):
                        break
                except (AssertionError, ConnectionResetError, BrokenPipeError, socket.timeout):
                    time.sleep(0.1)
                finally:
                    s.close()
            else:
                self.fail("no new connection served after the others closed")
            self.assertEqual(srv.stop(), 0, srv.log())
            self.assertGreaterEqual(srv.stats()["io"]["conns_rejected"], 1, srv.log())

    def test_pinned_worker(self):
        core = min(os.sched_getaffinity(0))
        with h.Server(h.config(), args=["--cores", str(core)]) as srv:
            self.assertIn(f"1 worker(s) on core(s) {core}", srv.log())
            m = h.sockperf_msg(2, 100)
            self.assertEqual(h.udp_call(srv.ep(SP, "udp"), m), h.sockperf_reply_of(m))


    def test_smallest_buffers_still_echo_large_messages(self):
        rt = "rx_buffers = 64\nrx_buffer_size = 512\ntx_buffers = 64\nburst = 1\nmax_conns = 8"
        with h.Server(h.config(rt)) as srv:
            for size in (14, 600, 1472, 9000, 65507):  # above rx_buffer_size: the large path
                m = h.sockperf_msg(size, size)
                self.assertEqual(h.udp_call(srv.ep(SP, "udp"), m), h.sockperf_reply_of(m), size)
            with h.tcp_connect(srv.ep(SP, "tcp")) as s:
                msgs = [h.sockperf_msg(i, 14 + 97 * i) for i in range(1, 60)]
                s.sendall(b"".join(msgs))
                want = b"".join(h.sockperf_reply_of(m) for m in msgs)
                self.assertEqual(h.recv_exact(s, len(want)), want)
            self.assertEqual(srv.stop(), 0, srv.log())

class BackendTest(unittest.TestCase):
    def serve_on(self, backend):
        srv = h.Server(h.config(backend="auto"), args=["--backend", backend], expect_start=False)
        try:
            srv._ready.wait(h.START_TIMEOUT)
            if not srv.alive():
                srv.wait_exit()
                if backend == "io_uring" and "io_uring" in srv.log() and srv.exit_code == 1:
                    self.skipTest("io_uring not available here: " + srv.log().splitlines()[-1])
                self.fail(f"--backend {backend} did not start:\n{srv.log()}")
            self.assertIn(f"corewire: ready (backend {backend},", srv.log())
            m = h.sockperf_msg(9, 200)
            self.assertEqual(h.udp_call(srv.ep(SP, "udp"), m), h.sockperf_reply_of(m))
            with h.tcp_connect(srv.ep(SP, "tcp")) as s:
                s.sendall(m * 10)
                self.assertEqual(h.recv_exact(s, len(m) * 10), h.sockperf_reply_of(m) * 10)
            with h.tcp_connect(srv.ep(NT, "tcp")) as s:
                s.sendall(h.native_msg(4, b"b" * 3000))
                self.assertEqual(h.native_parse(h.recv_exact(s, 3024))["payload"], b"b" * 3000)
        finally:
            self.assertEqual(srv.stop(), 0, srv.log())

    def test_epoll(self):
        self.serve_on("epoll")

    def test_io_uring(self):
        self.serve_on("io_uring")

    def test_busy_poll_two_workers(self):
        with h.Server(h.config(), args=["--workers", "2", "--busy-poll"]) as srv:
            self.assertIn("busy-poll", srv.log())
            for i in range(20):
                m = h.sockperf_msg(i, 64)
                self.assertEqual(h.udp_call(srv.ep(SP, "udp"), m), h.sockperf_reply_of(m))


if __name__ == "__main__":
    unittest.main(verbosity=2)
