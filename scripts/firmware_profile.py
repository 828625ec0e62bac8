#!/usr/bin/env python3
"""Executed instructions of a firmware run, per operator, function and source line.

    firmware_profile.py ELF DISASSEMBLY TB_COUNTS [--top N] [--annotate TEXT]

TB_COUNTS is what scripts/qemu_tb_counts.c wrote (translation-block start,
instructions, executions); DISASSEMBLY is `llvm-objdump -d` of ELF, used to
expand each block into its instruction addresses. Addresses are attributed
with `addr2line -f -i -C` (inlined frames included), so a kernel's helpers
count where they were inlined:

- operator: the outermost `… as IntKernels>::NAME` frame (the kernel call
  the runner made), else the outermost `runner::` function, else the
  outermost frame;
- function: the innermost frame;
- line: the innermost frame's file and line.

--annotate TEXT lists every instruction whose frames mention TEXT with its
execution count (the disassembly of a hot loop with counts beside it).
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys


def addr2line_tool():
    # GNU addr2line first: its -C demangles Rust's legacy symbols fully
    # (llvm-addr2line leaves `$LT$`-style escapes in them).
    if shutil.which("addr2line"):
        return "addr2line"
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True,
                             text=True).stdout.strip()
    rustlib = os.path.join(sysroot, "lib", "rustlib")
    for host in os.listdir(rustlib) if os.path.isdir(rustlib) else []:
        cand = os.path.join(rustlib, host, "bin", "llvm-addr2line")
        if os.access(cand, os.X_OK):
            return cand
    sys.exit("firmware_profile: no addr2line (binutils, or rustup component add llvm-tools)")


def instruction_counts(dis_path, counts_path):
    text = {}
    for line in open(dis_path):
        m = re.match(r"\s+([0-9a-f]+):\s+(.*)", line)
        if m:
            text[int(m.group(1), 16)] = m.group(2).strip()
    addrs = sorted(text)
    index = {a: i for i, a in enumerate(addrs)}
    count = collections.Counter()
    unknown = 0
    for line in open(counts_path):
        if line.startswith("#"):
            print(line.strip(), file=sys.stderr)
            continue
        pc, n, runs = line.split()
        i = index.get(int(pc, 16) & ~1)  # Thumb: bit 0 of the PC is the mode
        if i is None:
            unknown += int(n) * int(runs)
            continue
        for a in addrs[i:i + int(n)]:
            count[a] += int(runs)
    return count, text, unknown


def frames_of(elf, addrs):
    """addr -> [(function, file:line)], innermost first."""
    query = "\n".join(hex(a) for a in addrs) + "\n"
    out = subprocess.run([addr2line_tool(), "-e", elf, "-f", "-i", "-C", "-a"], input=query,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    frames, cur, i = {}, None, 0
    while i < len(out):
        line = out[i]
        if line.startswith("0x"):
            cur = int(line, 16)
            frames[cur] = []
            i += 1
            continue
        loc = out[i + 1] if i + 1 < len(out) else "?"
        frames[cur].append((line, re.sub(r" \(discriminator \d+\)", "", loc)))
        i += 2
    return frames


def operator(frames):
    for func, _ in reversed(frames):
        if "IntKernels>::" in func:
            return func.split("IntKernels>::")[-1].split("::")[0]
    for func, _ in reversed(frames):
        if "::runner::" in func:
            return "runner " + func.split("::runner::")[-1].split("::")[0]
    return "other " + frames[-1][0][-70:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("elf")
    ap.add_argument("disassembly")
    ap.add_argument("tb_counts")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--annotate", default=None)
    args = ap.parse_args()

    count, text, unknown = instruction_counts(args.disassembly, args.tb_counts)
    frames = frames_of(args.elf, sorted(count))
    total = sum(count.values())
    print(f"executed instructions: {total:,}" +
          (f" (+{unknown:,} in blocks outside the disassembly)" if unknown else ""))

    by_op, by_fn, by_line = collections.Counter(), collections.Counter(), collections.Counter()
    for a, c in count.items():
        fr = frames.get(a) or [("?", "?")]
        by_op[operator(fr)] += c
        by_fn[fr[0][0][:100]] += c
        loc = re.sub(r"^.*/(core|firmware-example)/src/", r"\1/", fr[0][1])
        by_line[f"{loc}  {fr[0][0].split('::')[-1][:40]}"] += c
    for title, table in (("operator", by_op), ("function", by_fn), ("source line", by_line)):
        print(f"\n== by {title}")
        for key, c in table.most_common(args.top):
            print(f"{c / 1e6:10.1f} M {100 * c / total:5.1f} %  {key}")

    if args.annotate:
        print(f"\n== instructions of frames mentioning {args.annotate!r} (executions)")
        for a in sorted(count):
            fr = frames.get(a) or []
            if any(args.annotate in f for f, _ in fr):
                loc = fr[0][1].split("/")[-1]
                print(f"{a:8x} {count[a]:>12,}  {text[a][:56]:56s} {loc}")


if __name__ == "__main__":
    main()
