"""Markdown tables and plots (the seqlen sweep, or flashgen over the best peer per row) from benchmark rows."""
from __future__ import annotations

from collections import defaultdict

from bench.cases import Case
from gen.axes import DIRECTIONS


def result_stem(meta: dict, tag: str = "") -> str:
    """A run's result file name without suffix: DATE-GPU[-TAG] (spaces in the GPU name as _)."""
    return f"{meta['date']}-{meta['gpu'].replace(' ', '_')}{'-' + tag if tag else ''}"


def _key(row):
    """A table line's case: rows of every impl for it share the key. Rows from before the
    feature fields (window, softcap, varlen, padded) read as plain cases."""
    case = Case.from_row(row)
    return (case.direction, case.head_dim, case.dtype, case.causal, case.batch, case.seqlen,
            case.window, case.softcap, case.varlen, case.padded)


def _variant(row) -> str:
    return Case.from_row(row).variant


UNSTEADY = 0.10    # rounds' spread above which a cell is marked `~`
HOST_BOUND = 0.8   # host time per call over GPU time at which a cell is marked `h`


def _marks(row) -> str:
    """A cell's flags from the timing fields (absent in rows from before them: none)."""
    marks = ""
    if (row.get("spread") or 0.0) > UNSTEADY:
        marks += "~"
    if row.get("host_ms") is not None and row.get("ms") and row["host_ms"] >= HOST_BOUND * row["ms"]:
        marks += "h"
    return f" {marks}" if marks else ""


def _flashgen_and_best_peer(by_impl: dict) -> tuple[dict | None, float | None]:
    """One case's rows by impl -> flashgen's best row (of its kernel families, where several ran)
    and the best peer's TFLOPS; None where either did not run."""
    best = max((r for i, r in by_impl.items() if i.startswith("flashgen") and r["tflops"]),
               key=lambda r: r["tflops"], default=None)
    peers = [r["tflops"] for i, r in by_impl.items() if not i.startswith("flashgen") and r["tflops"]]
    return best, (max(peers) if peers else None)


def markdown(meta: dict, rows: list[dict]) -> str:
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    matmul = meta["ceilings"]["matmul_bf16_tflops"]
    lines = [f"# Attention TFLOPS on {meta['gpu']} ({meta['date']}, torch {meta['torch']})", "",
             f"Command: `{meta['command']}`. Ceilings measured in the same run: bf16 matmul "
             f"{matmul:.0f} TFLOPS, device copy {meta['ceilings']['copy_gb_per_s']:.0f} GB/s. "
             "Cells: TFLOPS (fraction of the matmul ceiling); `flashgen/best` = flashgen (its best "
             "kernel family, where several ran) over the best peer of the row. FLOPs: forward "
             "4·b·s²·h·d (halved when causal), backward 2.5x."
             + (" Window and varlen rows count only the (query, key) pairs the mask lets through "
                "(forward 4·pairs·h·d), a padded row the pairs of its real tokens, so its TFLOPS "
                "are useful work; `flashgen ms`: the time of flashgen's best row."
                if any(_variant(r) for r in rows) else ""), ""]
    kernels = sorted({r["kernel"] for r in rows if r.get("kernel")})
    if kernels:
        lines += ["flashgen kernels timed: " + ", ".join(f"`{k}`" for k in kernels) + ".", ""]
    for sweep in (False, True):
        groups = defaultdict(dict)
        for r in rows:
            if r.get("sweep", False) == sweep:
                groups[_key(r)][r["impl"]] = r
        if not groups:
            continue
        # The variant column (and flashgen's time, to read a feature's saving) only where a row has one.
        variants = any(_variant(next(iter(by_impl.values()))) for by_impl in groups.values())
        lines += ["## Seqlen sweep" if sweep else "## Main grid", "",
                  "| dir | hdim | dtype | causal | batch x seqlen | " + ("variant | " if variants else "")
                  + " | ".join(impls) + " | flashgen/best |" + (" flashgen ms |" if variants else ""),
                  "|" + "---|" * (len(impls) + 6 + 2 * variants)]
        for key, by_impl in groups.items():
            direction, hdim, dtype, causal, batch, seqlen = key[:6]
            cells = []
            for impl in impls:
                r = by_impl.get(impl)
                cells.append(f"{r['tflops']:.0f} ({r['tflops'] / matmul:.0%}){_marks(r)}" if r and r["tflops"] else "n/a")
            best, peer = _flashgen_and_best_peer(by_impl)
            ratio = f"{best['tflops'] / peer:.2f}" if best and peer else "n/a"
            variant = f"{_variant(next(iter(by_impl.values()))) or '-'} | " if variants else ""
            ms = (f" {best['ms']:.3f} |" if best else " n/a |") if variants else ""
            lines.append(f"| {direction} | {hdim} | {dtype} | {'yes' if causal else 'no'} | {batch} x {seqlen} | "
                         + variant + " | ".join(cells) + f" | {ratio} |" + ms)
        lines.append("")
    if any(_marks(r) for r in rows):
        lines += [f"`~`: the timed rounds spread more than {UNSTEADY:.0%} (interquartile range over the median); "
                  f"`h`: host-bound, the host spent at least {HOST_BOUND:.0%} of the GPU time per call (enqueuing, "
                  "and any wait inside the call), so the cell may time Python, launches or a sync rather than "
                  "the kernels.", ""]
    notes = sorted({f"{r['impl']}: {r['error']}" for r in rows if r["error"]})
    if notes:
        lines += ["Not measured (n/a):", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def plot(rows: list[dict], path, gpu: str) -> bool:
    """The seqlen sweep's TFLOPS per impl where the run has a sweep, otherwise flashgen over the
    best peer per row (where peers ran). False: matplotlib missing or nothing to draw."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sweep = [r for r in rows if r.get("sweep", False) and r["tflops"]]
    if not sweep:
        return _plot_ratios(rows, path, gpu, plt)
    directions = [d for d in DIRECTIONS if any(r["direction"] == d for r in sweep)]
    fig, axes = plt.subplots(1, len(directions), figsize=(6 * len(directions), 4.5), squeeze=False)
    for ax, direction in zip(axes[0], directions):
        for impl in dict.fromkeys(r["impl"] for r in sweep):
            pts = sorted((r["seqlen"], r["tflops"]) for r in sweep if r["impl"] == impl and r["direction"] == direction)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=impl)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("seqlen (batch x seqlen = 16k)")
        ax.set_ylabel("TFLOPS")
        ax.set_title(f"{direction}, head dim 256, bf16, non-causal")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"flashgen vs peers on {gpu}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _plot_ratios(rows: list[dict], path, gpu: str, plt) -> bool:
    """A bar per main-grid row (one panel per direction): flashgen's TFLOPS over the best peer's,
    a line at 1.0 (level), bars at or above it in one colour, below it in another."""
    panels = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if not r.get("sweep", False):
            panels[r["direction"]][_key(r)][r["impl"]] = r
    bars = {}
    for direction, groups in panels.items():
        for key, by_impl in groups.items():
            best, peer = _flashgen_and_best_peer(by_impl)
            if best and peer:
                _, hdim, dtype, causal, batch, seqlen = key[:6]
                variant = _variant(best)
                label = (f"d{hdim} {dtype} {'causal' if causal else 'full'} {batch}x{seqlen}"
                         + (f" {variant}" if variant else ""))
                bars.setdefault(direction, []).append((label, best["tflops"] / peer))
    if not bars:
        return False
    directions = [d for d in DIRECTIONS if d in bars]
    height = max(3.0, 0.28 * max(len(v) for v in bars.values()) + 1.2)
    fig, axes = plt.subplots(1, len(directions), figsize=(6.5 * len(directions), height), squeeze=False)
    for ax, direction in zip(axes[0], directions):
        labels, ratios = zip(*bars[direction])
        ys = range(len(labels))
        ax.barh(ys, ratios, color=["tab:green" if x >= 1.0 else "tab:orange" for x in ratios])
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(min(0.8, min(ratios) - 0.05), max(1.2, max(ratios) + 0.05))
        ax.set_xlabel("flashgen TFLOPS / best peer's")
        ax.set_title(direction)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"flashgen over the best peer per row on {gpu}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    """python -m bench.report RESULTS.json ...: re-render the .md and .png beside each JSON."""
    import json
    import sys
    from pathlib import Path

    for name in (argv if argv is not None else sys.argv[1:]):
        path = Path(name)
        data = json.loads(path.read_text())
        path.with_suffix(".md").write_text(markdown(data["meta"], data["rows"]))
        plotted = plot(data["rows"], path.with_suffix(".png"), data["meta"]["gpu"])
        print(f"rendered {path.with_suffix('.md')}" + (" and .png" if plotted else " (no plot: matplotlib missing, or no sweep and no peer to compare)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
