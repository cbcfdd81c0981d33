#!/usr/bin/python3
"""Runs the benchmark harness (the cwbench package beside this file): see cwbench/cli.py.
Use Debian's python (/usr/bin/python3) for python3-matplotlib."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cwbench.cli import main  # noqa: E402

sys.exit(main())
