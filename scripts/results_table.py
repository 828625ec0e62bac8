#!/usr/bin/env python3
"""Render the results page (docs/results.md) from a results-table run folder.

    python3 scripts/results_table.py runs/table docs/results.md

The run folder layout is the one scripts/results-table.sh writes:

    fp/eval.json                                   FP32 model
    {minmax,percentile,dobi-released}-w{b}/report.json, eval/eval.json
    2dquant-w{b}/report.json, eval/eval.json,
                 init_eval/eval.json               DOBI (paper mode) = the DQC init
    2dquant-nofeat-w4/report.json, eval/eval.json  ablation: feature loss off
    int-golden-w{b}/int/eval.json, fq/eval.json    integer path vs fake-quant, B100

eval.json: {"sets": {name: {"mean_psnr_y", "mean_ssim_y", "count", "seconds",
"images": {...}}}, ...}; non-finite metrics are the strings "inf"/"nan".
report.json: {"method", "bits", "preset", "resumed", "config": {...},
"stages": [{"stage", "seconds"}], "total_seconds", ...}.

Missing or unreadable inputs never stop the script: their cells read "not run"
and the missing files are listed at the end of the page. The output depends
only on the input files (no clock, no host probing), so re-rendering the same
run folder gives the same bytes. Standard library only.
"""

import json
import math
import os
import sys

SETS = ["Set5", "Set14", "B100"]
BITS = [4, 3, 2]
NOT_RUN = "not run"

# The machine the table was produced on (the times are measured there, so this
# is deliberately a constant, not a probe of whatever machine re-renders).
MACHINE = "a 2-core CPU machine (no accelerator)"

# Rows of the main table per bit width: (label, folder pattern, eval path,
# kind). kind "report" takes the wall time from report.json total_seconds;
# "observe" takes it from the observe stage of the 2DQuant run.
METHOD_ROWS = [
    ("MinMax", "minmax-w{b}", "eval/eval.json", "report"),
    ("Percentile", "percentile-w{b}", "eval/eval.json", "report"),
    ("DOBI (paper mode)", "2dquant-w{b}", "init_eval/eval.json", "observe"),
    ("DOBI (released mode)", "dobi-released-w{b}", "eval/eval.json", "report"),
    ("2DQuant", "2dquant-w{b}", "eval/eval.json", "report"),
]


class Inputs:
    """Reads JSON files under the run folder, remembering what was missing."""

    def __init__(self, root):
        self.root = root
        self.missing = []  # relative paths, in order of first request
        self.broken = []  # (relative path, reason)
        self.cache = {}

    def load(self, rel):
        if rel in self.cache:
            return self.cache[rel]
        path = os.path.join(self.root, rel)
        data = None
        if not os.path.isfile(path):
            if rel not in self.missing:
                self.missing.append(rel)
        else:
            try:
                with open(path, "r", encoding="utf-8") as f:
                    data = json.load(f)
                if not isinstance(data, dict):
                    raise ValueError("top level is not an object")
            except (OSError, ValueError) as e:
                self.broken.append((rel, str(e).splitlines()[0] if str(e) else type(e).__name__))
                data = None
        self.cache[rel] = data
        return data


# ---------------------------------------------------------------- values


def num(v):
    """A metric value as float: JSON numbers, or the strings inf/-inf/nan."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)  # accepts "inf", "-inf", "nan"
        except ValueError:
            return None
    return None


def set_metric(ev, set_name, key):
    if ev is None:
        return None
    sets = ev.get("sets")
    s = sets.get(set_name) if isinstance(sets, dict) else None
    if not isinstance(s, dict):
        return None
    return num(s.get(key))


def fmt_val(v, digits=4):
    if v is None:
        return NOT_RUN
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def fmt_pair(ev, set_name):
    p = set_metric(ev, set_name, "mean_psnr_y")
    s = set_metric(ev, set_name, "mean_ssim_y")
    if p is None and s is None:
        return NOT_RUN
    return f"{fmt_val(p)} / {fmt_val(s)}"


def fmt_delta(a, b):
    """b - a, signed, 4 decimals."""
    if a is None or b is None:
        return NOT_RUN
    d = b - a
    if math.isnan(d) or math.isinf(d):
        return fmt_val(d)
    if d == 0:
        return "0.0000"
    if abs(d) < 5e-5:  # would print as +0.0000: keep it visibly non-zero
        return f"{d:+.1e}"
    return f"{d:+.4f}"


def fmt_seconds(s):
    if s is None:
        return NOT_RUN
    return f"{s:.1f}"


def bits_label(b):
    return f"W{b}A{b}"


def observe_seconds(report):
    """Seconds of the observe stage (the DOBI pass) of a calibrate report."""
    if report is None:
        return None
    stages = report.get("stages")
    for st in stages if isinstance(stages, list) else []:
        if isinstance(st, dict) and str(st.get("stage", "")).startswith("observe"):
            return num(st.get("seconds"))
    return None


def cfg(report, *keys):
    v = report
    for k in keys:
        if not isinstance(v, dict):
            return None
        v = v.get(k)
    return v


# ---------------------------------------------------------------- tables


def table(header, align, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


def main_table(inp, notes):
    header = ["Method", "Bits"] + [f"{s} PSNR / SSIM" for s in SETS] + [
        "Preset",
        "Calib. wall time (s)",
    ]
    align = ["---", "---"] + ["---:"] * len(SETS) + ["---", "---:"]
    rows = []
    fp = inp.load("fp/eval.json")
    rows.append(["FP", "FP32"] + [fmt_pair(fp, s) for s in SETS] + ["—", "—"])
    for b in BITS:
        for label, folder_pat, eval_rel, kind in METHOD_ROWS:
            folder = folder_pat.format(b=b)
            report = inp.load(f"{folder}/report.json")
            ev = inp.load(f"{folder}/{eval_rel}")
            if kind == "observe":
                secs = observe_seconds(report)
                if secs is None and report is not None:
                    time_cell = "— ¹"  # e.g. a resumed run that skipped the observe stage
                else:
                    time_cell = fmt_seconds(secs) + (" ¹" if secs is not None else "")
            else:
                secs = num(cfg(report, "total_seconds"))
                time_cell = fmt_seconds(secs)
                if label == "2DQuant" and secs is not None:
                    time_cell += " ²"
            if report is not None and report.get("resumed") is True:
                time_cell += " ³"
                notes.add_resumed(folder)
            preset = cfg(report, "preset")
            rows.append(
                [label, bits_label(b)]
                + [fmt_pair(ev, s) for s in SETS]
                + [str(preset) if preset is not None else NOT_RUN, time_cell]
            )
            notes.check_report(folder, report, b, label)
    return table(header, align, rows)


def ablation_feature(inp):
    header = ["Variant", "λ (feature weight)"] + [f"{s} PSNR" for s in SETS]
    align = ["---", "---:"] + ["---:"] * len(SETS)
    variants = [
        ("2DQuant W4A4, feature loss on", "2dquant-w4"),
        ("2DQuant W4A4, feature loss off", "2dquant-nofeat-w4"),
    ]
    psnr = {}
    rows = []
    for label, folder in variants:
        report = inp.load(f"{folder}/report.json")
        ev = inp.load(f"{folder}/eval/eval.json")
        lam = num(cfg(report, "config", "dqc", "feature_weight"))
        lam_cell = NOT_RUN if lam is None else f"{lam:g}"
        vals = [set_metric(ev, s, "mean_psnr_y") for s in SETS]
        psnr[folder] = vals
        rows.append([label, lam_cell] + [fmt_val(v) for v in vals])
    on, off = psnr["2dquant-w4"], psnr["2dquant-nofeat-w4"]
    rows.append(["Δ (off − on), dB", ""] + [fmt_delta(a, c) for a, c in zip(on, off)])
    return table(header, align, rows)


def ablation_dobi(inp):
    header = ["Bits", "DOBI mode"] + [f"{s} PSNR" for s in SETS]
    align = ["---", "---"] + ["---:"] * len(SETS)
    rows = []
    for b in BITS:
        paper = inp.load(f"2dquant-w{b}/init_eval/eval.json")
        released = inp.load(f"dobi-released-w{b}/eval/eval.json")
        pv = [set_metric(paper, s, "mean_psnr_y") for s in SETS]
        rv = [set_metric(released, s, "mean_psnr_y") for s in SETS]
        rows.append([bits_label(b), "paper"] + [fmt_val(v) for v in pv])
        rows.append([bits_label(b), "released"] + [fmt_val(v) for v in rv])
        rows.append(
            [bits_label(b), "Δ (released − paper), dB"] + [fmt_delta(p, r) for p, r in zip(pv, rv)]
        )
    return table(header, align, rows)


def image_gap_stats(int_ev, fq_ev, set_name):
    """(max |per-image PSNR gap|, number of images compared) or (None, 0)."""
    try:
        a = int_ev["sets"][set_name]["images"]
        b = fq_ev["sets"][set_name]["images"]
    except (KeyError, TypeError):
        return None, 0
    if not isinstance(a, dict) or not isinstance(b, dict):
        return None, 0
    worst, n = None, 0
    for name in sorted(set(a) & set(b)):
        pa = num((a[name] or {}).get("psnr_y")) if isinstance(a[name], dict) else None
        pb = num((b[name] or {}).get("psnr_y")) if isinstance(b[name], dict) else None
        if pa is None or pb is None:
            continue
        n += 1
        if math.isinf(pa) and math.isinf(pb) and pa == pb:
            d = 0.0
        else:
            d = abs(pa - pb)
        if worst is None or d > worst or math.isnan(d):
            worst = d
    return worst, n


def int_table(inp):
    header = [
        "Bits",
        "Bounds",
        "Integer-path PSNR / SSIM",
        "Fake-quant PSNR / SSIM",
        "PSNR gap (int − fq), dB",
        "Max per-image abs. PSNR gap, dB",
    ]
    align = ["---", "---", "---:", "---:", "---:", "---:"]
    rows = []
    for b in [3, 2]:
        int_ev = inp.load(f"int-golden-w{b}/int/eval.json")
        fq_ev = inp.load(f"int-golden-w{b}/fq/eval.json")
        pi = set_metric(int_ev, "B100", "mean_psnr_y")
        pf = set_metric(fq_ev, "B100", "mean_psnr_y")
        worst, n = image_gap_stats(int_ev, fq_ev, "B100") if int_ev and fq_ev else (None, 0)
        worst_cell = NOT_RUN if worst is None else f"{fmt_val(worst)} ({n} images)"
        rows.append(
            [
                bits_label(b),
                f"`golden/dobi_released_w{b}.safetensors`",
                fmt_pair(int_ev, "B100"),
                fmt_pair(fq_ev, "B100"),
                fmt_delta(pf, pi),
                worst_cell,
            ]
        )
    return table(header, align, rows)


class Notes:
    """Consistency checks on the report.json files, rendered at the end."""

    def __init__(self):
        self.items = []
        self.resumed = []
        self.seen = set()

    def add_resumed(self, folder):
        if folder not in self.resumed:
            self.resumed.append(folder)

    def check_report(self, folder, report, bits, label):
        if report is None or folder in self.seen:
            return
        self.seen.add(folder)
        got_bits = report.get("bits")
        if got_bits != bits:
            self.items.append(f"`{folder}/report.json` has bits = {got_bits!r}, expected {bits}.")
        method = report.get("method")
        want_method = {"minmax": "minmax", "percentile": "percentile", "dobi-released": "dobi",
                       "2dquant": "2dquant"}.get(folder.rsplit("-w", 1)[0])
        if want_method is not None and method != want_method:
            self.items.append(
                f"`{folder}/report.json` has method = {method!r}, expected {want_method!r}."
            )
        mode = cfg(report, "config", "dobi_mode")
        if folder.startswith("dobi-released") and mode != "released":
            self.items.append(f"`{folder}/report.json` has dobi_mode = {mode!r}, expected 'released'.")
        if folder.startswith("2dquant-w") and mode != "paper":
            self.items.append(
                f"`{folder}/report.json` has dobi_mode = {mode!r}: its init bounds are then "
                f"not the paper-mode DOBI of the \"DOBI (paper mode)\" row."
            )


def preset_text(inp):
    """': quick = ...' from the configs of the reports loaded so far."""
    seen = {}
    for rel in sorted(inp.cache):
        rep = inp.cache[rel]
        if not rel.endswith("report.json") or rep is None:
            continue
        preset = cfg(rep, "preset")
        if preset is None or preset in seen:
            continue
        ob, op = cfg(rep, "config", "obs_batch"), cfg(rep, "config", "obs_patch")
        it = cfg(rep, "config", "dqc", "iters")
        db, dp = cfg(rep, "config", "dqc", "batch"), cfg(rep, "config", "dqc", "patch")
        seed = cfg(rep, "config", "seed")
        if None in (ob, op, it, db, dp):
            continue
        seen[preset] = (
            f"`{preset}`: observation (MinMax / Percentile / DOBI statistics) on {ob} × {op}² "
            f"calibration patches, DQC {it} iterations of {db} × {dp}² patches"
            + (f", seed {seed}" if seed is not None else "")
        )
    if not seen:
        return ""
    return " (" + "; ".join(seen[k] for k in sorted(seen)) + ")"


def render(root):
    inp = Inputs(root)
    notes = Notes()
    parts = []
    parts.append("# Results: 2DQuant and baselines on the stand-in SwinIR-light ×4\n")
    parts.append(
        "> **Read this first.** These numbers come from the *stand-in* ×4 model "
        "`shared/data/models/swinir_light_x4_local.pth` (trained here from scratch for 3,500 "
        "iterations on 2 CPU cores, because the official SwinIR-light weights cannot be "
        "downloaded on these machines; see `shared/data/models/MODEL.md`). Its transformer body "
        "contributes little (zeroing every attention branch costs 0.04 dB on Set5), so the model is "
        "barely sensitive to quantization. The tables therefore show that the tool runs end to end "
        "and exactly (see the integer-path section); they do **not** show the method's quality. "
        "On the official model the paper reports 2DQuant drops of −0.68 dB at W4A4 and −2.92 dB at W2A2 on Set5 ×4.\n"
        ">\n"
        f"> Wall times were measured on {MACHINE} while other builds shared the machine, so "
        "they are upper bounds, not benchmarks.\n"
    )
    body = main_table(inp, notes)
    parts.append(
        "Metrics: BasicSR protocol, Y channel, border crop = scale (4), PSNR in dB / SSIM, mean "
        "over each set. The preset column is the `tdquant calibrate` preset"
        + preset_text(inp)
        + ". Wall time is the calibration only (run with `--no-eval`), from `report.json` "
        "`total_seconds`.\n"
    )

    parts.append("## Main table\n")
    parts.append(body + "\n")
    foot = [
        "¹ DOBI (paper mode) is not a separate run: it is `init_bounds.safetensors` of the 2DQuant "
        "run at the same bit width, i.e. the DOBI pass DQC starts from, evaluated on its own "
        "(`2dquant-w{b}/init_eval`). Its wall time is that run's observe stage.",
        "² 2DQuant's time includes its own DOBI (paper mode) observe stage, followed by DQC.",
    ]
    if notes.resumed:
        foot.append(
            "³ Resumed from a checkpoint; the time covers only the last invocation: "
            + ", ".join(f"`{f}`" for f in notes.resumed)
            + "."
        )
    parts.append("\n".join(f"{f}  " if i < len(foot) - 1 else f for i, f in enumerate(foot)) + "\n")

    parts.append("## Ablations\n")
    parts.append("### (a) DQC feature loss, W4A4\n")
    parts.append(
        "2DQuant W4A4 with the feature (distillation) loss at its configured weight λ and with "
        "λ = 0 (output loss only); everything else equal.\n"
    )
    parts.append(ablation_feature(inp) + "\n")
    parts.append("### (b) DOBI paper mode vs released mode\n")
    parts.append(
        "The two modes differ in the per-site strategy and the candidate search. Paper mode: "
        "one-sided search for the post-softmax map (AttnProb) and the fc2 input (post-GELU), "
        "two-sided elsewhere, Δ = (max − min)/(2K), candidates i = 0..=K, last minimum wins. "
        "Released mode: two-sided everywhere, i = 0..K−1, first minimum wins, the released "
        "code's step (`host/src/calib/dobi.rs`). Both are implemented (`--dobi-mode paper|released`). "
        "Paper mode = the 2DQuant runs' init bounds (`2dquant-w{b}/init_eval`), released mode = "
        "the `dobi-released-w{b}` runs. Δ is released − paper.\n"
    )
    parts.append(ablation_dobi(inp) + "\n")

    parts.append("## Integer path vs fake-quant (B100)\n")
    parts.append(
        "The golden released-DOBI bounds exported to a `.tdq` integer model (`tdquant export`) and "
        "evaluated with the integer path (`eval --int`), against the same bounds evaluated in "
        "fake-quant (`eval --bounds`).\n"
    )
    parts.append(int_table(inp) + "\n")

    parts.append("## Regenerate\n")
    parts.append(
        "```sh\n"
        "bash scripts/results-table.sh            # run every missing step, then render (~1.5-2 h on 2 cores)\n"
        "bash scripts/results-table.sh --format   # only re-render this page from runs/table\n"
        "```\n\n"
        "Steps whose outputs exist are skipped, so an interrupted run continues where it stopped. "
        "The run folder is `runs/table` (override with `TDQ_TABLE_DIR`); this page is rendered by "
        "`scripts/results_table.py <run folder> <page>`.\n"
    )

    if notes.items or inp.missing or inp.broken:
        parts.append("## Missing inputs and checks\n")
    if inp.missing:
        folders = {}
        for rel in sorted(inp.missing, key=run_order):
            top = rel.split("/", 1)[0]
            folders.setdefault(top, []).append(rel.split("/", 1)[1] if "/" in rel else rel)
        total = os.path.isdir(root)
        lines = [
            f"Not run yet (missing under `{root_label(root)}`{'' if total else ', which does not exist'}):\n"
        ]
        for top in folders:
            exists = os.path.isdir(os.path.join(root, top))
            what = ", ".join(f"`{f}`" for f in folders[top])
            lines.append(f"- `{top}/`{'' if exists else ' (folder absent)'}: {what}")
        parts.append("\n".join(lines) + "\n")
    if inp.broken:
        parts.append(
            "Unreadable (shown as \"not run\"):\n\n"
            + "\n".join(f"- `{rel}`: {why}" for rel, why in inp.broken)
            + "\n"
        )
    if notes.items:
        parts.append("Checks:\n\n" + "\n".join(f"- {i}" for i in notes.items) + "\n")

    return "\n".join(parts)


def run_order(rel):
    """Sort key: the order in which scripts/results-table.sh produces files."""
    order = ["fp"]
    for b in BITS:
        order += [f"minmax-w{b}", f"percentile-w{b}", f"dobi-released-w{b}", f"2dquant-w{b}"]
    order += ["2dquant-nofeat-w4", "int-golden-w3", "int-golden-w2"]
    files = ["eval.json", "report.json", "eval/eval.json", "init_eval/eval.json",
             "int/eval.json", "fq/eval.json"]
    top, _, sub = rel.partition("/")
    return (order.index(top) if top in order else len(order), top,
            files.index(sub) if sub in files else len(files), sub)


def root_label(root):
    return os.path.normpath(root)


README_BEGIN = "<!-- results-table:begin (scripts/results_table.py writes this section) -->"
README_END = "<!-- results-table:end -->"


def readme_section(text):
    """The page from the caveat to the integer-path table, headings demoted
    two levels, for embedding in the README."""
    start = text.index("> **Read this first.**")
    end = text.index("## Regenerate")
    out = []
    for line in text[start:end].rstrip().splitlines():
        if line.startswith("#"):
            line = "##" + line
        out.append(line)
    return "\n".join(out)


def update_readme(path, text):
    with open(path, encoding="utf-8") as f:
        readme = f.read()
    if README_BEGIN not in readme or README_END not in readme:
        sys.stderr.write(f"{path}: no results-table markers; README not updated\n")
        return
    a = readme.index(README_BEGIN) + len(README_BEGIN)
    b = readme.index(README_END)
    new = readme[:a] + "\n" + readme_section(text) + "\n" + readme[b:]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(new)
    print(path)


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(f"usage: {argv[0]} <run folder> <output .md> [README.md]\n")
        return 2
    root, out = argv[1], argv[2]
    text = render(root)
    d = os.path.dirname(out)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(out)
    if len(argv) == 4:
        update_readme(argv[3], text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
