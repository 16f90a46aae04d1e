"""Command line: ``python -m bayesmix demo``, ``fit`` and ``gallery``.

``fit`` fits a formula on a CSV file or a shipped dataset and prints the lme4-style summary::

    python -m bayesmix fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _load(data: str):
    import pandas as pd

    from bayesmix import datasets

    path = Path(data)
    if path.suffix == ".csv" and path.exists():
        return pd.read_csv(path)
    return datasets.load(data)


def _demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import bayesmix as bm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    df = bm.datasets.load("sleepstudy")
    print("Fitting Reaction ~ Days + (Days | Subject) to lme4's sleepstudy data "
          f"({len(df)} rows, 18 subjects), 4 chains x 1000 draws with nutpie...", flush=True)
    model = bm.Model("Reaction ~ Days + (Days | Subject)", df)
    fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
    print()
    print(fit.summary())
    figures = {"sleepstudy_shrinkage.png": fit.plot_shrinkage("Subject"),
               "sleepstudy_ranef.png": fit.plot_caterpillar("Subject")}
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        print(f"wrote {out / name}")
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import bayesmix as bm

    model = bm.Model(args.formula, _load(args.data), family=args.family, link=args.link)
    fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains,
                    random_seed=args.seed, sampler=args.sampler)
    print(fit.summary())
    return 0


def _gallery(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from bayesmix.cli.gallery import GALLERY, write_gallery

    names = args.only.split(",") if args.only else None
    unknown = [n for n in names or [] if n not in GALLERY]
    if unknown:
        print(f"error: no gallery model {unknown[0]!r}; choose from {', '.join(GALLERY)}",
              file=sys.stderr)
        return 2
    paths = write_gallery(args.out, names, draws=args.draws, tune=args.tune,
                          chains=args.chains, random_seed=args.seed)
    print(f"wrote {len(paths)} files to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bayesmix``."""
    parser = argparse.ArgumentParser(prog="python -m bayesmix",
                                     description="Bayesian mixed models with lme4 syntax")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit sleepstudy, print the summary, write figures")
    demo.add_argument("--out", default="demo_output", help="folder for the figures")
    demo.set_defaults(run=_demo)
    fit = sub.add_parser("fit", help="fit a formula to a CSV file or shipped dataset")
    fit.add_argument("formula")
    fit.add_argument("--data", required=True, help="CSV path or shipped dataset name")
    fit.add_argument("--family", default="gaussian")
    fit.add_argument("--link", default=None)
    fit.add_argument("--draws", type=int, default=1000)
    fit.add_argument("--tune", type=int, default=1000)
    fit.add_argument("--chains", type=int, default=4)
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("--sampler", default="nutpie")
    fit.set_defaults(run=_fit)
    gallery = sub.add_parser("gallery", help="write every diagnostic picture of the gallery fits")
    gallery.add_argument("--out", default="gallery", help="folder for the pictures")
    gallery.add_argument("--only", default="", help="comma-separated subset, e.g. radon")
    gallery.add_argument("--draws", type=int, default=500)
    gallery.add_argument("--tune", type=int, default=500)
    gallery.add_argument("--chains", type=int, default=4)
    gallery.add_argument("--seed", type=int, default=1)
    gallery.set_defaults(run=_gallery)
    args = parser.parse_args(argv)
    from bayesmix.errors import BayesmixError

    try:
        return args.run(args)
    except BayesmixError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
