#!/usr/bin/env python3
"""The Python package against skglm and celer, from Python, on the same
arrays (a measurement script, not CI).

Usage:
    convexformer bench --suite hard --cases planted-S,planted-M,sq-0.1 --save-data DIR
    PY/bin/python scripts/bench_python.py DIR [--cases ...] [--repeats 3] [--json OUT]

PY is a virtual environment with the package (pip install ./python), skglm
and celer. For each case DIR/<case>.npz (with DIR/<case>.json: beta, loss,
program) this times:

- ours: ConvexAttentionRegressor(beta=beta, fit_intercept=False, tol=1e-6)
  .fit(X, y), wall clock from Python (median of --repeats), and the core's own
  solve time (report["seconds"]): the difference is the binding's overhead
  (array checks and the copy into the core's layout, recovery and report);
- skglm's and celer's GroupLasso on the same arrays, time to our objective
  within 1e-6 relative (scripts/bench_peers.py's method: a fresh fit per tol
  of a decreasing sequence, the first within the target counts).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_peers  # noqa: E402

import convexformer as cf  # noqa: E402


def ours(X, y, meta, repeats):
    walls, cores = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        est = cf.ConvexAttentionRegressor(beta=meta["beta"], fit_intercept=False, tol=1e-6,
                                          model=meta["program"]).fit(X, y)
        walls.append(time.perf_counter() - t)
        cores.append(est.report_["seconds"])
    t = time.perf_counter()
    np.ascontiguousarray(X).copy()
    copy = time.perf_counter() - t
    return est, float(np.median(walls)), float(np.median(cores)), copy


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--cases", default="planted-S,planted-M,sq-0.1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tols", default="1e-4,1e-6,1e-8,1e-10,1e-12")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--target", type=float, default=1e-6)
    p.add_argument("--json")
    args = p.parse_args()
    import celer
    import skglm

    tols = [float(t) for t in args.tols.split(",")]
    rows = []
    for case in args.cases.split(","):
        meta = json.load(open(os.path.join(args.dir, case + ".json")))
        if meta["loss"] != "squared" or meta["program"] != "scalar":
            print(f"{case}: only the scalar squared-loss cases have both peers", file=sys.stderr)
            continue
        with np.load(os.path.join(args.dir, case + ".npz")) as z:
            X, y = z["X"].astype(np.float64), z["y"].astype(np.float64)
        N, n, d = X.shape
        est, wall, core, copy = ours(X, y, meta, args.repeats)
        meta = dict(meta, case=case, objective=est.objective_, converged=est.converged_,
                    median_seconds=wall, relative_gap=est.relative_gap_)
        Xf, Y = X.reshape(N, n * d), y.reshape(N, 1)
        peers = {}
        for name, make in (("skglm", bench_peers.make_skglm_quadratic),
                           ("celer", bench_peers.make_celer_quadratic)):
            r = bench_peers.run_peer(name, make, np.asfortranarray(Xf), Y, "squared", meta,
                                     tols, args)
            peers[name] = r["seconds_to_target"]
        row = {"case": case, "N": N, "n": n, "d": d, "ours_wall": wall, "ours_core": core,
               "overhead": wall - core, "x_copy": copy, "gap": est.relative_gap_,
               "passes": est.data_passes_, **peers}
        rows.append(row)
        fmt = lambda v: "not reached" if v is None else f"{v:.3f} s"  # noqa: E731
        print(f"{case:<10} ours {wall:.3f} s (core {core:.3f} s, overhead {wall - core:.3f} s, "
              f"X copy {copy:.3f} s), gap {est.relative_gap_:.1e}, {est.data_passes_:.1f} passes; "
              f"skglm {fmt(peers['skglm'])}, celer {fmt(peers['celer'])}", flush=True)
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
