"""Tables, Markdown and the scaling plot of a benchmark run (pure formatting)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["header_line", "line", "write_markdown", "ratios", "scaling_figure",
           "finish_scaling_figure", "fmt"]

_COLS = ("model", "lib", "rows", "wall s", "compile s", "sample s", "min ESS", "ESS/s",
         "level ESS", "RSS MB", "bm/bambi")


def _f(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


fmt = _f  # a number as the tables print it


def header_line() -> str:
    return ("{:<18} {:<8} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}"
            .format(*_COLS))


def line(row: dict[str, Any], ratio: float | None = None) -> str:
    if "skipped" in row or "error" in row:
        why = row.get("skipped") or row.get("error", "").splitlines()[-1][:80]
        return f"{row['model']:<18} {row['lib']:<8} {row['rows']:>9,}  " + \
            ("skipped: " if "skipped" in row else "ERROR: ") + why
    fmt = "{:<18} {:<8} {:>9,} {:>8.1f} {:>9.1f} {:>8.1f} {:>8.0f} {:>8.1f} {:>9.0f} {:>8.0f} {:>8}"
    return (fmt.format(row["model"], row["lib"], row["rows"], row["wall_s"], row["compile_s"],
                    row["sampling_s"], row["min_ess_bulk"], row["ess_per_s"],
                    row["min_ess_levels"] if row.get("min_ess_levels") is not None
                    else float("nan"), row["peak_rss_mb"],
                    "" if ratio is None else f"{ratio:.2f}"))


def ratios(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """(kind, model) -> ESS/s and memory ratios of bayesmix to bambi."""
    by = {(r["kind"], r["model"], r["lib"]): r for r in rows}
    out = {}
    for (kind, model, lib), r in by.items():
        if lib != "bayesmix" or "ess_per_s" not in r:
            continue
        b = by.get((kind, model, "bambi"))
        if b is None or "ess_per_s" not in b:
            continue
        out[(kind, model)] = {"ess_per_s": r["ess_per_s"] / b["ess_per_s"],
                              "rss": r["peak_rss_mb"] / b["peak_rss_mb"],
                              "wall": b["wall_s"] / r["wall_s"]}
    return out


def _md_table(rows: list[dict[str, Any]], rat: dict) -> list[str]:
    head = ["model", "library", "rows", "draws (tune+draws)", "wall s", "construct s",
            "compile s", "sampling s", "cold start s", "2nd fit s", "min bulk ESS (parameter)",
            "ESS/s", "ESS/s x bambi", "min level ESS", "peak RSS MB", "RSS / bambi",
            "divergences"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        k = (r["kind"], r["model"])
        draws = f"{r['tune']}+{r['draws']} x{r['chains']}"
        if "skipped" in r or "error" in r:
            why = r.get("skipped") or "error: " + r.get("error", "").strip().splitlines()[-1][:120]
            out.append(f"| {r['model']} | {r['lib']} | {r['rows']:,} | {draws} | "
                       f"{why.replace('|', '/')} |" + " |" * (len(head) - 5))
            continue
        ratio = rat.get(k) if r["lib"] == "bayesmix" else None
        cells = [r["model"], r["lib"], f"{r['rows']:,}", draws, _f(r["wall_s"]),
                 _f(r["construct_s"], 2), _f(r["compile_s"]), _f(r["sampling_s"]),
                 _f(r.get("cold_start_s")), _f(r.get("second_fit_s"), 2),
                 f"{r['min_ess_bulk']:.0f} ({r['worst']})", _f(r["ess_per_s"]),
                 _f(ratio["ess_per_s"], 2) if ratio else "",
                 _f(r.get("min_ess_levels"), 0), _f(r["peak_rss_mb"], 0),
                 _f(ratio["rss"], 2) if ratio else "", _f(r.get("divergences"))]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out


def scaling_figure(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any, Any, Any]:
    """The scaling rows that have results, and a figure of three panels for them (the
    figure is None when there is nothing to plot)."""
    series = [r for r in rows if r["kind"] == "scaling" and "wall_s" in r]
    if not series:
        return series, None, None, None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    return series, fig, axes, plt


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    series, fig, axes, plt = scaling_figure(rows)
    if fig is None:
        return False
    panels = (("wall_s", "wall time (s)"), ("ess_per_s", "min bulk ESS / s"),
              ("peak_rss_mb", "peak RSS (MB)"))
    for lib, style, color in (("bayesmix", "o-", "C0"), ("bambi", "s--", "C1")):
        pts = sorted((r for r in series if r["lib"] == lib), key=lambda r: r["rows"])
        if not pts:
            continue
        for ax, (key, _) in zip(axes, panels):
            ax.plot([r["rows"] for r in pts], [r[key] for r in pts], style, color=color,
                    label=lib)
            if key == "wall_s":
                ax.plot([r["rows"] for r in pts], [r["sampling_s"] for r in pts], style[0] + ":",
                        color=color, alpha=0.5, label=f"{lib}: sampling only")
            for r in pts:
                if key == "wall_s" and r["draws"] != pts[0]["draws"]:
                    ax.annotate(f"{r['tune']}+{r['draws']} draws", (r["rows"], r[key]),
                                fontsize=7, textcoords="offset points", xytext=(-40, 6))
    finish_scaling_figure(fig, axes, plt, panels, path, "rows",
                          "Crossed gaussian model y ~ service + (1|student) + (1|lecturer) + "
                          "(1|dept): cost by data size")
    return True


def finish_scaling_figure(fig: Any, axes: Any, plt: Any, panels: Any, path: Path, xlabel: str,
                          title: str, fontsize: float | None = None) -> None:
    """Log axes, labels, legend and title of a :func:`scaling_figure`; saved to ``path``.
    ``fontsize``: of the panel titles and the legend (None: matplotlib's)."""
    for ax, (_, label) in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(label, fontsize=fontsize)
    axes[0].legend(fontsize=None if fontsize is None else fontsize - 2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(meta: dict[str, Any], rows: list[dict[str, Any]], md: Path,
                   png: Path) -> None:
    rat = ratios(rows)
    s = meta["settings"]
    lines = [
        "# Benchmarks: bayesmix vs bambi",
        "",
        "Generated by `python -m benchmarks` (`make bench`); do not edit by hand. "
        f"Run started {meta['started']}, finished {meta.get('finished', '?')}."
        + (f" Assembled by `python -m benchmarks.merge` from {len(meta['runs'])} runs "
           f"({'; '.join(meta['runs'])}); each row is from the last run that has it "
           "(`run` in the JSON)." if meta.get("runs") else ""),
        "",
        f"Machine: {meta['machine']['platform']}, {meta['machine']['cpus']} CPUs, Python "
        f"{meta['machine']['python']}.  ",
        "bayesmix side: " + ", ".join(f"{k} {v}" for k, v in meta["versions"]["bayesmix"].items())
        + ".  ",
        "bambi side: " + (", ".join(f"{k} {v}" for k, v in (meta["versions"]["bambi"] or {})
                                    .items()) or "not run") + ".",
        "",
        "Each number is one job in a fresh process, timed from after its imports: model "
        "construction, compilation and sampling, "
        f"{s['chains']} chains x ({s['tune']} tuning + {s['draws']} draws) unless the table "
        f"says otherwise (large data: `{s['large_draws']}` = rows:draws). *min bulk ESS* is "
        "over the non-level parameters (fixed effects, group SDs, correlations, family "
        "parameters); *ESS/s* divides it by the wall time; *level ESS* is the minimum over the "
        "level effects. *peak RSS* is the process's maximum resident memory (imports "
        "included). *compile s* is model building plus compilation (bambi: `Model.build` plus "
        "PyMC's `init_nuts`). *cold start* is the wall time of a 10+10-draw warm-up job run "
        "first" + (" with an empty compile cache (`--cache fresh`)" if s["cache"] == "fresh"
                   else " (with the machine's compile cache, so not necessarily cold)")
        + "; the timed job then finds the caches warm (the first model's cold start also pays "
        "for compiling PyTensor's per-operation code, which later models reuse). bayesmix's "
        "precompiled kernel, which serves most models here without a per-formula compile, is "
        "compiled once per machine when the package is installed (19-21 s on this machine) and "
        "is not part of a cold start; [the first-fit benchmark](benchmarks_first_fit.md) "
        "measures it. *2nd fit* is a second construction and fit of the same model in the "
        "same process.",
        "",
        "## Suite",
        "",
        *_md_table([r for r in rows if r["kind"] == "suite"], rat),
        "",
    ]
    notes = sorted({f"{r['model']}: {r['note']}" for r in rows
                    if r["kind"] == "suite" and r.get("note")})
    if notes:
        lines += ["Notes:", "", *[f"* {n}" for n in notes], ""]
    scaling = [r for r in rows if r["kind"] == "scaling"]
    if scaling:
        lines += ["## Scaling: the crossed gaussian model by data size", "",
                  "Students and lecturers grow with the rows (24 ratings per student, 66 per "
                  "lecturer), departments stay at 14 (see `benchmarks/simulate.py`).", "",
                  *_md_table(scaling, rat), ""]
        if plot(rows, png):
            rel = Path(png).name if Path(png).parent == Path(md).parent else str(png)
            lines += [f"![cost by data size]({rel})", ""]
    lines += ["## Targets", "", *_targets(rows, rat), ""]
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("\n".join(lines))


def _targets(rows: list[dict[str, Any]], rat: dict) -> list[str]:
    out = []
    suite = [(k, v) for k, v in rat.items() if k[0] == "suite"]
    if suite:
        worst = min(suite, key=lambda kv: kv[1]["ess_per_s"])
        ok = all(v["ess_per_s"] >= 5 for _, v in suite)
        out.append(f"* ESS/s >= 5x bambi on every suite model: {'met' if ok else 'NOT met'} "
                   f"(lowest: {worst[0][1]} {worst[1]['ess_per_s']:.2f}x; "
                   + ", ".join(f"{k[1]} {v['ess_per_s']:.2f}x" for k, v in suite) + ").")
    sleep = next((r for r in rows if r["kind"] == "suite" and r["model"] == "sleepstudy"
                  and r["lib"] == "bayesmix" and "wall_s" in r), None)
    if sleep:
        second = sleep.get("second_fit_s")
        cold = sleep.get("cold_start_s")
        out.append(f"* sleepstudy end to end under 2 s after the first import: fresh process "
                   f"with warm caches {sleep['wall_s']:.2f} s, second fit in the same process "
                   + (f"{second:.2f} s" if second is not None else "not measured")
                   + (f"; the first fit on a machine (empty compile cache, 10+10 draws) "
                      f"{cold:.1f} s." if cold is not None else "."))
    out.append("* brms: not installed on this machine and not measured, so no ratio to it is "
               "reported.")
    big = rat.get(("suite", "courses"))
    big_row = next((r for r in rows if r["kind"] == "suite" and r["model"] == "courses"
                    and r["lib"] == "bayesmix" and "wall_s" in r), None)
    if big:
        out.append(f"* 73k crossed model peak RSS <= 1/3 of bambi's: ratio {big['rss']:.2f} "
                   f"({'met' if big['rss'] <= 1 / 3 else 'NOT met'}).")
    if big_row:
        out.append(f"* 73k crossed model slowest parameter: {big_row['worst']} "
                   f"(min bulk ESS {big_row['min_ess_bulk']:.0f}).")
    return out
