"""The corewire command line and config file, through the real binary: bad configs exit 2
with the key and line named, --check-config, --help, --version."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SOURCE_ROOT = os.environ.get("CW_SOURCE_ROOT",
                             os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class ConfigTest(unittest.TestCase):
    def check_bad(self, text, where, key):
        path = h.write_temp(text)
        try:
            p = h.run_corewire(["-c", path])
        finally:
            os.unlink(path)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "one line expected:\n" + p.stderr)
        self.assertTrue(lines[0].startswith(f"corewire: config error: {path}:{where}: {key}: "),
                        lines[0])

    def test_typo_in_key(self):
        self.check_bad('[runtime]\nbakend = "epoll"\n', 2, "runtime.bakend")

    def test_typo_in_section(self):
        self.check_bad('[log]\nlevel = "info"\n\n[runtim]\nworkers = 1\n', 4, "runtim")

    def test_unknown_service(self):
        self.check_bad('[[service]]\nname = "echo"\nudp = 0\n[[service]]\nname = "memcache"\ntcp = 1\n',
                       5, "service[1].name")

    def test_wrong_type_and_range(self):
        self.check_bad('[runtime]\nworkers = "two"\n', 2, "runtime.workers")
        self.check_bad('[runtime]\nmax_conns = -1\n', 2, "runtime.max_conns")
        self.check_bad('[[service]]\nname = "echo"\nudp = 65536\n', 3, "service[0].udp")

    def test_durations_old_keys_warn_typos_fail(self):
        # The deprecated integer keys run, with one warning each naming the new key.
        path = h.write_temp('[runtime]\ncoalesce_us = 50\n[control]\npublish_ms = 20\n')
        try:
            p = h.run_corewire(["-c", path, "--check-config"])
        finally:
            os.unlink(path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f'corewire: warning: {path}:2: runtime.coalesce_us is deprecated: write '
                      'coalesce = "50us"', p.stderr)
        self.assertIn("control.publish_ms is deprecated: write publish = \"20ms\"", p.stderr)
        self.check_bad('[runtime]\ncoalesce = "50 usec"\n', 2, "runtime.coalesce")
        self.check_bad('[dpdk]\nfrag_timeout = 2\nfrag_timeout_ms = 2000\n', 3,
                       "dpdk.frag_timeout_ms")

    def test_duplicate_port(self):
        self.check_bad('[[service]]\nname = "echo"\ntcp = 4444\n\n[[service]]\nname = "sockperf-echo"\n'
                       'tcp = 4444\n', 7, "service[1].tcp")

    def test_syntax_error(self):
        self.check_bad('[runtime]\nworkers = = 1\n', 2, "syntax")

    def test_missing_file(self):
        p = h.run_corewire(["-c", "/nonexistent/cw.toml"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("corewire: config error: /nonexistent/cw.toml: cannot open", p.stderr)

    def test_bad_flags(self):
        for args, key in ((["--backend", "dpdk9"], "--backend"), (["--cores", "0,x"], "--cores"),
                          (["--listen", "localhost"], "--listen"), (["--workers", "0"], "--workers")):
            p = h.run_corewire(args + ["--check-config"])
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(f"corewire: config error: command line: {key}: ", p.stderr)
        p = h.run_corewire(["--frobnicate"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--frobnicate", p.stderr)

    def test_check_config_default_and_example(self):
        p = h.run_corewire(["--check-config"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("service sockperf-echo: udp 127.0.0.1:11111 tcp 127.0.0.1:11111", p.stdout)
        self.assertIn("service echo: udp 127.0.0.1:11112 tcp 127.0.0.1:11112", p.stdout)
        self.assertIn("config ok", p.stdout)
        p = h.run_corewire(["-c", os.path.join(SOURCE_ROOT, "docs/corewire.example.toml"),
                            "--check-config", "--workers", "2", "--backend", "epoll"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("backend epoll, 2 worker(s) unpinned", p.stdout)

    def test_help_and_version(self):
        p = h.run_corewire(["--help"])
        self.assertEqual(p.returncode, 0)
        for flag in ("--config", "--check-config", "--backend", "--cores", "--workers",
                     "--listen", "--busy-poll", "--version"):
            self.assertIn(flag, p.stdout)
        p = h.run_corewire(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^corewire \d+\.\d+")


if __name__ == "__main__":
    unittest.main(verbosity=2)
