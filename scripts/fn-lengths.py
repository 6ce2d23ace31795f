#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 150 lines), longest first.

A function whose doc comment says "A table" is marked `(table)`: issue #18 lets
table-shaped functions (option tables, record codecs, $SYS lists) stay long.

A function runs from its `fn` line to the line that closes its body; the count includes
both and everything between (comments, blank lines). Brace matching skips strings,
chars and comments well enough for this crate's code (rustfmt style).

    scripts/fn-lengths.py [--limit N] [PATH ...]     (default PATH: src)
"""
import os
import re
import sys

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def strip(line, state):
    """The line without string/char literals and comments; `state` carries a block comment."""
    out, i, n = [], 0, len(line)
    while i < n:
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"], i = False, j + 2
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"], i = True, i + 2
            continue
        if c == '"' or (c == "r" and re.match(r'r#*"', line[i:])):
            m = re.match(r'r(#*)"', line[i:])
            if m:
                end = '"' + m.group(1)
                j = line.find(end, i + len(m.group(0)))
                if j < 0:
                    state["raw"] = end
                    return "".join(out)
                i = j + len(end)
                continue
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    state = {"block": False, "raw": None}
    code = []
    for line in lines:
        if state["raw"]:
            j = line.find(state["raw"])
            if j < 0:
                code.append("")
                continue
            line, state["raw"] = line[j + len(state["raw"]):], None
        code.append(strip(line, state))
    for start, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened, nest = 0, False, 0
        for end in range(start, len(lines)):
            for c in code[end]:
                if c == "{":
                    depth, opened = depth + 1, True
                elif c == "}":
                    depth -= 1
                elif c in "([" and not opened:
                    nest += 1
                elif c in ")]" and not opened:
                    nest -= 1
                elif c == ";" and not opened and nest == 0:
                    break  # a declaration without a body
            else:
                if opened and depth == 0:
                    doc, k = [], start - 1
                    while k >= 0 and lines[k].strip().startswith(("///", "#[")):
                        doc.append(lines[k])
                        k -= 1
                    is_table = any("A table" in d for d in doc)
                    yield m.group(1), start + 1, end - start + 1, is_table
                    break
                continue
            break


def main(argv):
    limit, roots = 150, []
    while argv:
        a = argv.pop(0)
        if a == "--limit":
            limit = int(argv.pop(0))
        else:
            roots.append(a)
    found = []
    for root in roots or ["src"]:
        walk = [(root, [], [os.path.basename(root)])] if os.path.isfile(root) else os.walk(root)
        for d, _, files in walk:
            for f in files:
                p = os.path.join(d, f) if os.path.isdir(root) else root
                if p.endswith(".rs"):
                    found += [(n, p, s, l, t) for n, s, l, t in functions(p) if l > limit]
    for name, path, start, length, is_table in sorted(found, key=lambda x: -x[3]):
        print(f"{length:5}  {path}:{start}  {name}{'  (table)' if is_table else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
