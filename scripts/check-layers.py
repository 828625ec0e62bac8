#!/usr/bin/env python3
"""Fails when a module of the host crate imports a module above it.

The host crate follows the data path; LAYERS lists its top-level modules from
the bottom up. A module may use `crate::X` only for X in a lower layer (or
itself); anything else is an upward import (and would allow a cycle). Every
top-level module must be listed, so a new one has to be placed.

    python3 scripts/check-layers.py        # exit 1 and one line per violation
"""
import pathlib
import re
import sys

LAYERS = [
    # utilities with no knowledge of the model
    ["data_root", "output", "progress", "cpu_features", "compute_device", "input_file"],
    # inputs: weights files, images, MATLAB bicubic
    ["weights", "bicubic"],
    ["image_io"],
    # the FP model
    ["model"],
    # BasicSR evaluation (any super-resolver)
    ["eval"],
    # quantization sites, bounds, DOBI, DQC, the calibration pipeline
    ["calib"],
    # FP weights + bounds -> the integer model
    ["export"],
    # running the integer model on the CPU, and tiling any upscaler
    ["cpu_backend", "tiling"],
    ["intmodel"],
    # the subcommands' library halves
    ["parity", "upscale"],
    ["app"],
    # the `tdquant` binary's subcommands (modules of main.rs, one file each)
    ["cli"],
]

ROOT = pathlib.Path(__file__).resolve().parent.parent / "host" / "src"


def module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".rs")


def main() -> int:
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    errors = []
    for path in sorted(ROOT.rglob("*.rs")):
        mod = module_of(path)
        if mod in ("lib", "main"):
            continue
        if mod not in rank:
            errors.append(f"{path.relative_to(ROOT.parent.parent)}: module `{mod}` is in no layer of scripts/check-layers.py")
            continue
        text = path.read_text()
        for no, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("//"):
                continue
            for used in re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", line):
                if used == mod or used not in rank and used in ("self",):
                    continue
                if used not in rank:
                    errors.append(f"{path.relative_to(ROOT.parent.parent)}:{no}: `crate::{used}` is in no layer")
                elif rank[used] > rank[mod]:
                    errors.append(
                        f"{path.relative_to(ROOT.parent.parent)}:{no}: `{mod}` (layer {rank[mod]}) imports "
                        f"`crate::{used}` (layer {rank[used]}), a module above it"
                    )
    for e in errors:
        print(e)
    if errors:
        print(f"check-layers: {len(errors)} violation(s); the order is in scripts/check-layers.py")
        return 1
    print(f"check-layers: host modules respect the layer order ({len(rank)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
