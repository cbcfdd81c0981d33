"""cwbench: the benchmark harness (bench/README.md "Harness").

Any server x any client x any workload, from a small declarative spec (specs/*.json):
  pair   paired rounds: every server of the table runs once per round, back to back, the
         order reversed every other round; every run is kept; each ratio is the median of
         the per-round ratios, with the per-round list and a bootstrap 95% interval.
  curve  open-loop latency against offered load (Poisson arrivals, latency from the
         intended send time), stepped up to saturation, servers alternated at each step.
Before each round (each step of a curve) a cache-line ping-pong probe between the two
cores checks the VM's state; a slow probe postpones the round (logged), results are never
filtered afterwards. Every run records whole-machine CPU (/proc/stat, every core, softirq
included) and the server's own CPU (schedstat), per message. The raw JSON of every run is
written next to the table (raw.json), with the command, machine, date and commit; tables
(table.md) and plots (*.png) are rendered from that JSON alone (`render`).
"""
import os
import sys

# procgroup.py lives beside the package (shared with the older table scripts).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
