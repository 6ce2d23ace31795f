#!/usr/bin/env python3
"""debian/copyright for the culex packages, generated from Cargo.lock at build time.

    packaging/copyright.py TRIPLE > copyright           write it
    packaging/copyright.py --check ARTIFACTS copyright  CI: compare its crates with
                                                        those the build linked

The crates are those the binaries link for TRIPLE: `cargo tree -e normal --target
TRIPLE` (from Cargo.lock, --locked; build scripts, dev-dependencies and proc-macros are
not in the binary), with their details from `cargo metadata`. The check compares them
with what the build really compiled for the target (cargo's JSON artifact messages). One Files
paragraph per crate: its version, its Copyright lines (from its licence files, else its
Cargo.toml authors) and its licence expression as Cargo.toml states it. The texts:
one stand-alone License paragraph per licence named, taken from the crates' own licence
files (copyright lines removed); a crate whose licence combines several with AND (ring)
carries its own licence files in full. A licence with no text found in any crate fails
the build: nothing is listed without its text.
"""
import json
import os
import re
import subprocess
import sys

ROOT = "culex"


def classify(text):
    """The SPDX id of a licence file's text, or None: a pointer, a notice, or a file
    that holds several licences (ring's LICENSE-BoringSSL), which is no canonical text."""
    found = []
    if "Apache License" in text and "Version 2.0" in text and "TERMS AND CONDITIONS" in text:
        found.append("Apache-2.0")
    if "Permission is hereby granted, free of charge" in text:
        found.append("MIT")
    if "This is free and unencumbered software released into the public domain" in text:
        found.append("Unlicense")
    if "Permission to use, copy, modify, and/or distribute this software" in text:
        found.append("ISC")
    if "Redistribution and use in source and binary forms" in text and "Neither the name" in text:
        found.append("BSD-3-Clause")
    return found[0] if len(found) == 1 else None


APACHE_POINTER = ("On Debian systems, the complete text of the Apache License, Version 2.0\n"
                  "can be found in /usr/share/common-licenses/Apache-2.0.")


def without_apache_text(text):
    """A licence file with the Apache License 2.0's own text (its terms and appendix)
    replaced by Debian's pointer to /usr/share/common-licenses (Debian policy 12.5)."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == "Apache License"), None)
    end = next((i for i, l in enumerate(lines) if "END OF TERMS AND CONDITIONS" in l), None)
    if start is None or end is None or end < start:
        return text
    # The appendix (how to apply the licence) ends with its boilerplate notice.
    for i in range(end, len(lines)):
        if "limitations under the License." in lines[i]:
            end = i
            break
    return "\n".join(lines[:start] + [APACHE_POINTER] + lines[end + 1:])


def licence_files(pkg):
    d = os.path.dirname(pkg["manifest_path"])
    names = []
    for n in sorted(os.listdir(d)):
        if re.match(r"(?i)^(licen[cs]e|copying|unlicense|notice)", n) and os.path.isfile(os.path.join(d, n)):
            names.append(n)
    if pkg.get("license_file"):
        lf = os.path.basename(pkg["license_file"])
        if lf not in names:
            names.append(lf)
    out = []
    for n in names:
        with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
            out.append((n, f.read()))
    return out


def ids_of(expression):
    """The licence ids an expression names ("MIT OR Apache-2.0", "Apache-2.0/MIT")."""
    return [t for t in re.split(r"[\s()/]+", expression) if t and t.upper() not in ("OR", "AND", "WITH")]


def dep5_expression(expression):
    e = expression.replace("/", " OR ")
    e = re.sub(r"\s+", " ", e).strip()
    return e.replace(" OR ", " or ").replace(" AND ", " and ")


def indent(text):
    """A text as a DEP-5 field continuation: each line one space in, empty lines '.'."""
    lines = text.rstrip().splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(" " + l.rstrip() if l.strip() else " ." for l in lines)


def copyright_lines(files):
    seen = []
    for _, text in files:
        for line in text.splitlines():
            s = line.strip()
            if re.match(r"(?i)^copyright\b.*\d{4}", s) and "[yyyy]" not in s and s not in seen:
                seen.append(s)
    return seen


def tree_crates(triple):
    """(name, version) of every crate `cargo tree` says culex's targets use for TRIPLE:
    normal dependencies only, with the features resolver 2 enables for a build without
    the tests (cargo metadata's graph also holds what only dev-dependencies turn on)."""
    tree = subprocess.check_output(
        ["cargo", "tree", "--locked", "-e", "normal", "--target", triple, "--prefix", "none",
         "--format", "{p}", "-p", ROOT], text=True)
    out = set()
    for line in tree.splitlines():
        m = re.match(r"^(\S+) v(\S+)", line)
        if m and m.group(1) != ROOT:
            out.add((m.group(1), m.group(2)))
    return out


def linked_crates(triple):
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", triple]))
    by_name = {(p["name"], p["version"]): p for p in meta["packages"]}
    root = next(p for p in meta["packages"] if p["name"] == ROOT and p["source"] is None)
    crates = []
    for key in sorted(tree_crates(triple)):
        p = by_name[key]
        if any("proc-macro" in t["kind"] for t in p["targets"]):
            continue
        crates.append(p)
    return root, crates


def generate(triple):
    root, crates = linked_crates(triple)
    out = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Upstream-Name: culex",
        "Comment: The binaries are static: they contain the crates listed below (those",
        f" Cargo.lock resolves for {triple}, normal dependencies of culex), from",
        " crates.io, where cargo fetched them. packaging/copyright.py generates this file",
        " at build time; the Files patterns name each crate's source as cargo unpacks it",
        " (~/.cargo/registry/src/*/NAME-VERSION).",
        "",
        "Files: *",
        "Copyright: 2026 the culex authors",
        f"License: {dep5_expression(root['license'])}",
        "",
    ]
    # What every static binary also contains: Rust's standard library and musl.
    out += [
        "Files: rust-std/*",
        "Copyright: The Rust Project Developers",
        "License: MIT or Apache-2.0",
        "Comment: Rust's standard library (std, core, alloc, compiler_builtins and",
        " their dependencies), linked into every Rust binary.",
        "",
        "Files: musl/*",
        "Copyright: 2005-2020 Rich Felker, et al.",
        "License: MIT",
        "Comment: musl libc, linked statically into the binaries (the *-linux-musl*",
        " targets); its COPYRIGHT file lists the contributors and the few files under",
        " other permissive terms (public domain, BSD-style, all compatible with MIT).",
        "",
    ]
    texts = {}  # id -> text, from the first crate that has it
    texts["Apache-2.0"] = APACHE_POINTER
    for pkg in [root] + crates:
        for name, text in licence_files(pkg):
            lid = classify(text)
            if lid and lid not in texts:
                body = "\n".join(l for l in text.splitlines()
                                 if not re.match(r"(?i)^\s*copyright\b.*\d{4}", l))
                texts[lid] = body
    needed = set(ids_of(root["license"])) | {"MIT", "Apache-2.0"}
    for pkg in crates:
        lic = pkg.get("license") or ""
        files = licence_files(pkg)
        if not lic:
            sys.exit(f"copyright.py: {pkg['name']} {pkg['version']} states no licence")
        holders = copyright_lines(files) or [a for a in pkg.get("authors", [])] or [f"the {pkg['name']} developers"]
        out.append(f"Files: {pkg['name']}-{pkg['version']}/*")
        out.append("Copyright: " + holders[0])
        out.extend("           " + h for h in holders[1:])
        if re.search(r"\bAND\b", lic):
            # Several licences at once: the crate's own files, whole.
            if not files:
                sys.exit(f"copyright.py: {pkg['name']} ({lic}) ships no licence file")
            out.append(f"License: {dep5_expression(lic)}")
            for i, (name, text) in enumerate(files):
                if i:
                    out.append(" .")
                out.append(f" {pkg['name']}'s {name}:")
                out.append(" .")
                out.append(indent(without_apache_text(text)))
        else:
            out.append(f"License: {dep5_expression(lic)}")
            needed.update(ids_of(lic))
        out.append(f"Comment: crate {pkg['name']} {pkg['version']} ({pkg['source']})")
        out.append("")
    for lid in sorted(needed):
        if lid == "EPL-2.0":
            out.append("License: EPL-2.0")
            out.append(" This program and the accompanying materials are made available under the")
            out.append(" terms of the Eclipse Public License 2.0 which is available at")
            out.append(" https://www.eclipse.org/legal/epl-2.0/")
            out.append(" .")
            out.append(" SPDX-License-Identifier: EPL-2.0")
            out.append("")
            continue
        if lid not in texts:
            sys.exit(f"copyright.py: no crate ships the text of {lid}")
        out.append(f"License: {lid}")
        out.append(indent(texts[lid]))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def check(artifacts, path):
    """Every crate cargo compiled for the target and linked into the binaries is in the
    file, and no other. ARTIFACTS: cargo's JSON messages of the build (cross/build.sh
    with CULEX_ARTIFACTS=FILE): each library built for the target (its files under
    target/TRIPLE/, not the host's build scripts and their dependencies) is linked.
    Crates of the Rust distribution (std, built from rust-src for armhf) are covered by
    the "Rust standard library" paragraph."""
    want = set()
    with open(artifacts, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("reason") != "compiler-artifact":
                continue
            kinds = msg["target"]["kind"]
            if not any(k in ("lib", "rlib") for k in kinds) or "proc-macro" in kinds:
                continue
            pid = msg["package_id"]
            # Crates of the Rust distribution: path sources, and the registry crates
            # std depends on, built with their "rustc-dep-of-std" feature (armhf's
            # -Zbuild-std).
            if not pid.startswith("registry+") or "rustc-dep-of-std" in msg.get("features", []):
                continue
            # Built for the target: under target/TRIPLE/release/ (deps/, or build/ with
            # nightly's newer layout), not the host's target/release/.
            if not any(re.search(r"/[a-z0-9_]+-unknown-linux-[a-z0-9]+/release/", fn) for fn in msg["filenames"]):
                continue
            name, version = re.search(r"#([^@]+)@(\S+)$", pid).groups()
            want.add(f"{name}-{version}")
    if not want:
        sys.exit(f"copyright.py --check: no target library in {artifacts}")
    with open(path, encoding="utf-8") as f:
        have = set(re.findall(r"^Files: (\S+)/\*$", f.read(), re.M))
    have -= {"rust-std", "musl"}
    missing, extra = sorted(want - have), sorted(have - want)
    if missing or extra:
        sys.exit(f"copyright.py --check {path}: missing {missing}, not linked {extra}")
    print(f"{path}: {len(have)} crates, the {len(want)} that the build linked")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2:
        sys.stdout.write(generate(sys.argv[1]))
    else:
        sys.exit(__doc__)
