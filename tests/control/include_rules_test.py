#!/usr/bin/env python3
"""The include rules between the runtime (app/) and management (control/), stdlib only.

usage: include_rules_test.py SOURCE_ROOT

  1. control/ includes nothing from app/ but the contract, app/runtime/control_contract.hh;
  2. nothing app/runtime/ or app/services/ includes reaches control/, directly or through
     other headers;
  3. the quoted-include graph of control/, app/ and dataplane/ has no cycle.
Quoted includes resolve against the source root (the build's -I), then the including
file's directory; what resolves to neither (generated headers) is outside the graph.
"""
import os
import re
import sys
import tempfile
import unittest

ROOT = None
CONTRACT = "app/runtime/control_contract.hh"
SCANNED = ("control", "app", "dataplane")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def include_graph(root):
    """{file: [included files]}, paths relative to root."""
    graph = {}
    for top in SCANNED:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if not f.endswith((".hh", ".h", ".cc")):
                    continue
                path = os.path.relpath(os.path.join(d, f), root)
                with open(os.path.join(root, path), errors="replace") as src:
                    text = src.read()
                deps = []
                for inc in INCLUDE.findall(text):
                    for cand in (inc, os.path.join(os.path.dirname(path), inc)):
                        cand = os.path.normpath(cand)
                        if os.path.isfile(os.path.join(root, cand)):
                            deps.append(cand)
                            break
                graph[path] = deps
    return graph


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        f = todo.pop()
        for d in graph.get(f, []):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def find_cycle(graph):
    """One include cycle as a list of files, or None."""
    state, stack = {}, []

    def visit(f):
        state[f] = 1
        stack.append(f)
        for d in graph.get(f, []):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[f] = 2
        return None

    for f in sorted(graph):
        if f not in state:
            c = visit(f)
            if c:
                return c
    return None


def violations(root):
    graph = include_graph(root)
    out = []
    for f, deps in sorted(graph.items()):
        if f.startswith("control/"):
            out += ["%s includes %s (control/ may include only %s from app/)" % (f, d, CONTRACT)
                    for d in deps if d.startswith("app/") and d != CONTRACT]
        if f.startswith(("app/runtime/", "app/services/")):
            out += ["%s reaches %s" % (f, d) for d in sorted(reachable(graph, f))
                    if d.startswith("control/")]
    cycle = find_cycle(graph)
    if cycle:
        out.append("include cycle: " + " -> ".join(cycle))
    return out


class IncludeRules(unittest.TestCase):
    def test_the_tree_keeps_the_rules(self):
        self.assertTrue(os.path.isfile(os.path.join(ROOT, CONTRACT)), ROOT)
        graph = include_graph(ROOT)
        self.assertIn(CONTRACT, graph.get("control/segment_layout.hh", []))
        self.assertEqual(violations(ROOT), [])

    def test_each_rule_catches_its_violation(self):
        with tempfile.TemporaryDirectory() as d:
            def write(path, *incs):
                os.makedirs(os.path.join(d, os.path.dirname(path)), exist_ok=True)
                with open(os.path.join(d, path), "w") as f:
                    f.write("".join('#include "%s"\n' % i for i in incs))
            write(CONTRACT)
            write("app/runtime/helper.hh", "control/thing.hh")
            write("app/services/svc.hh", "app/runtime/helper.hh")
            write("control/thing.hh", "app/runtime/worker.hh", CONTRACT)
            write("app/runtime/worker.hh")
            write("dataplane/a.hh", "b.hh")  # relative to its directory
            write("dataplane/b.hh", "dataplane/a.hh")
            v = violations(d)
            self.assertIn("control/thing.hh includes app/runtime/worker.hh (control/ may include "
                          "only %s from app/)" % CONTRACT, v)
            self.assertIn("app/runtime/helper.hh reaches control/thing.hh", v)
            self.assertIn("app/services/svc.hh reaches control/thing.hh", v, "transitively")
            self.assertTrue(any(x.startswith("include cycle: dataplane/a.hh -> dataplane/b.hh")
                                for x in v), v)
            self.assertEqual(len(v), 4, v)


if __name__ == "__main__":
    ROOT = os.path.abspath(sys.argv[1])
    unittest.main(argv=[sys.argv[0]], verbosity=2)
