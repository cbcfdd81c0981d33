"""Interop of the rtp service with GStreamer's rtpbin (Debian gstreamer1.0-tools, -plugins-base,
-plugins-good), over loopback.

One rtpbin session both sends a PCMU stream (audiotestsrc, 660 Hz) to corewire and receives
corewire's (its 440 Hz tone), with RTP and RTCP: GStreamer sends both to corewire's one port
(RFC 5761 demultiplexing there) from ephemeral ports (peer_match = "address"), and receives
corewire's RTP on G and RTCP on G+1 (peer_rtcp). Checked: the audio GStreamer writes to a file
is corewire's tone sample for sample (after mu-law, within its quantisation) over 3 s without
a gap; corewire counted GStreamer's stream without loss and parsed its RTCP (no bad_rtcp, a
report block about corewire's stream with a round trip from LSR/DLSR). GStreamer runs for
7 s, stopped by SIGINT (EOS, so the file is complete); every process is bounded in time.
"""

import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness as h
from test_rtp import Session

GST = shutil.which("gst-launch-1.0")


def free_port_pair():
    """G, G+1 both free (G even, as RTP/RTCP pairs traditionally are)."""
    for _ in range(50):
        g = h.free_port(socket.SOCK_DGRAM) & ~1
        socks = []
        try:
            for p in (g, g + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return g
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port pair")


@unittest.skipUnless(GST, "gst-launch-1.0 not installed (tools/install-deps.sh test)")
class GStreamerTest(unittest.TestCase):
    def test_rtpbin_both_ways(self):
        g = free_port_pair()
        c = h.free_port(socket.SOCK_DGRAM)
        d = tempfile.mkdtemp(prefix="cw-rtp-gst-")
        raw = os.path.join(d, "out.raw")
        s = Session(f'peer = "127.0.0.1:{g}"\npeer_rtcp = "127.0.0.1:{g + 1}"\n'
                    f'peer_match = "address"\nrtcp_min_interval = "1s"', port=c)
        try:
            pipeline = (
                f"rtpbin name=rb "
                f"audiotestsrc is-live=true samplesperbuffer=160 freq=660 ! "
                f"audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay ! rb.send_rtp_sink_0 "
                f"rb.send_rtp_src_0 ! udpsink host=127.0.0.1 port={c} "
                f"rb.send_rtcp_src_0 ! udpsink host=127.0.0.1 port={c} sync=false async=false "
                f'udpsrc port={g} caps="application/x-rtp,media=audio,clock-rate=8000,'
                f'encoding-name=PCMU,payload=0" ! rb.recv_rtp_sink_0 '
                f"udpsrc port={g + 1} ! rb.recv_rtcp_sink_0 "
                f"rb. ! rtppcmudepay ! mulawdec ! audioconvert ! audio/x-raw,format=S16LE ! "
                f"filesink location={raw}")
            gst = subprocess.Popen([GST, "-e", *pipeline.split(" ")], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
            try:
                time.sleep(7)
                counters = s.counters()
                gst.send_signal(signal.SIGINT)  # -e: EOS first, so the file is complete
                out, _ = gst.communicate(timeout=15)
            finally:
                if gst.poll() is None:
                    gst.kill()
                    gst.wait(5)
            self.assertEqual(gst.returncode, 0, out)
        finally:
            s.stop()
        # corewire got GStreamer's stream and RTCP.
        self.assertGreater(counters["rtp_in"], 250, counters)
        self.assertGreater(counters["rtcp_in"], 0, counters)
        self.assertEqual((counters["bad_rtp"], counters["bad_rtcp"]), (0, 0), counters)
        self.assertEqual(counters["unknown_source"], 0, counters)
        self.assertEqual(counters["lost"], 0, counters)
        self.assertGreater(counters["expected"], 250, counters)
        self.assertGreater(counters["rtt_us"], 0, counters)  # GStreamer's RR had our SR's LSR
        # GStreamer got corewire's: 440 Hz, amplitude 8000, one continuous sine over 3 s.
        with open(raw, "rb") as f:
            data = f.read()
        shutil.rmtree(d, ignore_errors=True)
        x = [int.from_bytes(data[i:i + 2], "little", signed=True)
             for i in range(0, len(data) - 1, 2)]
        self.assertGreater(len(x), 5 * 8000, "less than 5 s of audio")
        w = x[len(x) // 2 - 12000: len(x) // 2 + 12000]
        om = 2 * math.pi * 440 / 8000
        a = sum(v * math.sin(om * i) for i, v in enumerate(w))
        b = sum(v * math.cos(om * i) for i, v in enumerate(w))
        amp, ph = 2 * math.hypot(a, b) / len(w), math.atan2(b, a)
        self.assertLess(abs(amp - 8000), 150, amp)
        bad = sum(1 for i, v in enumerate(w) if abs(v - 8000 * math.sin(om * i + ph)) > 300)
        self.assertEqual(bad, 0)


if __name__ == "__main__":
    unittest.main()
