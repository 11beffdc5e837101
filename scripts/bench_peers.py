#!/usr/bin/env python3
"""Time skglm and celer on the hard suite's data (a measurement script, not CI).

Usage:
    convexformer bench --suite hard --save-data DIR [--solver fista] [--max-seconds 120]
    /work/peers/bin/python scripts/bench_peers.py DIR [--json OUT.json]
        [--cases sq-0.1,logit-0.1] [--tols 1e-4,1e-6,1e-8,1e-10,1e-12]
        [--max-seconds 300] [--target 1e-6]

Needs numpy, skglm (0.5) and celer (0.7.4), as in the /work/peers venv.

For every case DIR/<case>.npz (X of shape (N, n, d), y) with its result file
DIR/<case>.json (written by `--save-data`: beta, our objective, our relative
gap, ...), X is reshaped to (N, n*d), so the n token blocks of d contiguous
features are the groups, and:

- squared loss (scalar, and vector-l1 with c outputs): skglm.GroupLasso and
  celer.GroupLasso. Neither has a multi-output group lasso, but our vector-l1
  objective separates over the outputs, so each output is fitted separately;
  the objectives and the times of the c fits are summed.
- logistic loss: skglm GeneralizedLinearEstimator(LogisticGroup, WeightedGroupL2,
  GroupProxNewton), labels +-1. celer has no group-penalised logistic
  regression (its LogisticRegression is l1 only), so it is skipped.
- cross-entropy (gated-ce): neither peer has a group-penalised multinomial
  model on the gate-expanded features; skipped.

Scaling. Ours: sum_i L(yhat_i, y_i) + beta * sum_k ||z_k||_2 with the squared
loss 1/2 (yhat - y)^2 and the logistic loss log(1 + exp(-y yhat)), summed over
samples, no intercept. skglm's QuadraticGroup is 1/(2N) ||y - Xw||^2 and its
LogisticGroup 1/N sum log(1 + exp(-y Xw)); celer's GroupLasso is
1/(2N) ||y - Xw||^2 + alpha sum_g ||w_g||. Both are ours divided by N when
alpha = beta / N. Every objective reported here is recomputed from the peer's
coefficients in our scaling.

Measurement. Each peer is run with a decreasing tol sequence, a fresh fit per
tol (no warm start), max_iter large, fit_intercept=False. We report the first
fit whose objective is within --target (1e-6) relative, (P_peer - P_ref) /
max(1, |P_ref|), of the reference, with its time, tol and objective, and the
objective at the tightest tol, and whether ours is lower. The reference is our
objective when our solve converged; otherwise (ours not certified) the peer's
own objective at its tightest tol. A case's tol sequence stops early when one
fit exceeds --max-seconds. skglm is numba-compiled: each of its estimators is
fitted once on a small slice first, outside the timing, to compile it.
"""

import argparse
import glob
import json
import os
import sys
import time
import warnings

import numpy as np


def groups_of(n_tokens, d):
    return [list(range(k * d, (k + 1) * d)) for k in range(n_tokens)]


def penalty(w, n_tokens, d):
    return float(np.linalg.norm(w.reshape(n_tokens, d), axis=1).sum())


def our_objective(loss, X, y, W, beta, n_tokens, d):
    """Our objective for W of shape (c, n*d) (one row per output)."""
    total = 0.0
    for l in range(W.shape[0]):
        yhat = X @ W[l]
        if loss == "squared":
            yl = y[:, l] if y.ndim == 2 else y
            total += 0.5 * float(np.sum((yhat - yl) ** 2))
        elif loss == "logistic":
            total += float(np.sum(np.logaddexp(0.0, -y * yhat)))
        else:
            raise ValueError(loss)
        total += beta * penalty(W[l], n_tokens, d)
    return total


def make_skglm_quadratic(n_tokens, d, alpha, tol):
    from skglm import GroupLasso

    return GroupLasso(groups=d, alpha=alpha, tol=tol, max_iter=10_000,
                      max_epochs=100_000, fit_intercept=False)


def make_celer_quadratic(n_tokens, d, alpha, tol):
    from celer import GroupLasso

    return GroupLasso(groups=d, alpha=alpha, tol=tol, max_iter=10_000,
                      max_epochs=100_000, fit_intercept=False)


def make_skglm_logistic(n_tokens, d, alpha, tol):
    from skglm import GeneralizedLinearEstimator
    from skglm.datafits import LogisticGroup
    from skglm.penalties import WeightedGroupL2
    from skglm.solvers import GroupProxNewton
    from skglm.utils.data import grp_converter

    grp_indices, grp_ptr = grp_converter(d, n_tokens * d)
    return GeneralizedLinearEstimator(
        LogisticGroup(grp_ptr=grp_ptr, grp_indices=grp_indices),
        WeightedGroupL2(alpha=alpha, weights=np.ones(n_tokens), grp_ptr=grp_ptr,
                        grp_indices=grp_indices),
        GroupProxNewton(tol=tol, max_iter=10_000, max_pn_iter=10_000,
                        fit_intercept=False),
    )


def fit_all_outputs(make, X, Y, n_tokens, d, alpha, tol):
    """Fits each output column of Y separately; returns (W, summed seconds)."""
    W = np.zeros((Y.shape[1], X.shape[1]))
    seconds = 0.0
    for l in range(Y.shape[1]):
        est = make(n_tokens, d, alpha, tol)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, Y[:, l])
        seconds += time.perf_counter() - t0
        W[l] = np.asarray(est.coef_).ravel()
    return W, seconds


def run_peer(name, make, X, Y, loss, meta, tols, args):
    n_tokens, d, N = meta["n_tokens"], meta["n_features"], X.shape[0]
    beta = meta["beta"]
    alpha = beta / N
    yy = Y[:, 0] if loss == "logistic" else Y
    # Compile (numba) outside the timing, on a small slice.
    m = min(N, 64)
    fit_all_outputs(make, np.asfortranarray(X[:m]), Y[:m, :1], n_tokens, d, alpha, 1e-2)
    runs = []
    for tol in tols:
        W, secs = fit_all_outputs(make, X, Y, n_tokens, d, alpha, tol)
        obj = our_objective(loss, X, yy, W, beta, n_tokens, d)
        active = int(np.sum(np.linalg.norm(W.reshape(W.shape[0], n_tokens, d), axis=2) > 0))
        runs.append({"tol": tol, "seconds": secs, "objective": obj, "active_blocks": active})
        print(f"  {meta['case']:<11} {name:<14} tol {tol:.0e}: {secs:9.3f} s, "
              f"objective {obj:.10e}", file=sys.stderr, flush=True)
        if secs > args.max_seconds:
            break
    tight = runs[-1]
    ours = meta["objective"]
    ref = ours if meta.get("converged", True) else min(r["objective"] for r in runs)
    scale = max(1.0, abs(ref))
    first = next((r for r in runs if (r["objective"] - ref) / scale <= args.target), None)
    return {
        "case": meta["case"],
        "peer": name,
        "reference": "ours" if meta.get("converged", True) else "peer-tightest",
        "reference_objective": ref,
        "ours_objective": ours,
        "ours_converged": meta.get("converged"),
        "ours_seconds": meta.get("median_seconds", meta.get("seconds")),
        "ours_relative_gap": meta.get("relative_gap"),
        "reached": first is not None,
        "seconds_to_target": first["seconds"] if first else None,
        "tol_at_target": first["tol"] if first else None,
        "objective_at_target": first["objective"] if first else None,
        "rel_diff_at_target": (first["objective"] - ref) / scale if first else None,
        "tightest_tol": tight["tol"],
        "tightest_objective": tight["objective"],
        "tightest_seconds": tight["seconds"],
        "tightest_rel_diff_to_ours": (tight["objective"] - ours) / max(1.0, abs(ours)),
        "ours_lower": ours < tight["objective"],
        "runs": runs,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", help="folder written by convexformer bench --suite hard --save-data")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--cases", help="comma-separated case names (default: all in DIR)")
    p.add_argument("--tols", default="1e-4,1e-6,1e-8,1e-10,1e-12")
    p.add_argument("--max-seconds", type=float, default=300.0,
                   help="stop a case's tol sequence after a fit slower than this")
    p.add_argument("--target", type=float, default=1e-6,
                   help="relative distance to the reference objective to reach")
    args = p.parse_args()
    tols = [float(t) for t in args.tols.split(",")]
    files = sorted(glob.glob(os.path.join(args.dir, "*.json")))
    wanted = set(args.cases.split(",")) if args.cases else None
    import celer
    import skglm

    results, skipped = [], []
    for jf in files:
        meta = json.load(open(jf))
        case = meta.get("case")
        if case is None or (wanted and case not in wanted):
            continue
        loss = meta["loss"]
        if loss not in ("squared", "logistic") or meta["program"] not in ("scalar", "vector-l1"):
            skipped.append((case, f"{meta['program']} with {loss}: no peer has this program"))
            continue
        with np.load(os.path.join(args.dir, case + ".npz")) as z:
            X3, y = z["X"], z["y"]
        N = X3.shape[0]
        X = np.asfortranarray(X3.reshape(N, -1), dtype=np.float64)
        del X3
        Y = y.reshape(N, -1).astype(np.float64)
        if loss == "squared":
            peers = [("skglm", make_skglm_quadratic), ("celer", make_celer_quadratic)]
        else:
            peers = [("skglm-pn", make_skglm_logistic)]
            skipped.append((case, "celer: no group-penalised logistic regression"))
        for name, make in peers:
            results.append(run_peer(name, make, X, Y, loss, meta, tols, args))

    print(f"peers: skglm {skglm.__version__}, celer {celer.__version__}, numpy {np.__version__}; "
          f"target: relative difference <= {args.target:.0e} to the reference objective")
    hdr = (f"{'case':<11} {'peer':<9} {'ours s':>9} {'ours conv':>9} {'s to target':>11} "
           f"{'tol':>7} {'rel diff':>10} {'tight tol':>9} {'tight s':>9} "
           f"{'tight - ours (rel)':>18} {'ours lower':>10}")
    print(hdr)
    for r in results:
        fmt = lambda v, f: (f"{v:{f}}" if v is not None else "-")
        print(f"{r['case']:<11} {r['peer']:<9} {fmt(r['ours_seconds'], '.3f'):>9} "
              f"{('yes' if r['ours_converged'] else 'no'):>9} "
              f"{fmt(r['seconds_to_target'], '.3f'):>11} {fmt(r['tol_at_target'], '.0e'):>7} "
              f"{fmt(r['rel_diff_at_target'], '.1e'):>10} {r['tightest_tol']:>9.0e} "
              f"{r['tightest_seconds']:>9.3f} {r['tightest_rel_diff_to_ours']:>18.2e} "
              f"{('yes' if r['ours_lower'] else 'no'):>10}")
    print(f"\n{'case':<11} {'peer':<9} objectives (our scaling): ours / peer at target / peer tightest")
    for r in results:
        at = r["objective_at_target"]
        print(f"{r['case']:<11} {r['peer']:<9} {r['ours_objective']:.12e} / "
              f"{(f'{at:.12e}' if at is not None else '-')} / {r['tightest_objective']:.12e}")
    for case, why in skipped:
        print(f"skipped: {case}: {why}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": args.target, "tols": tols, "results": results,
                       "skipped": [{"case": c, "why": w} for c, w in skipped]}, f, indent=2)


if __name__ == "__main__":
    main()
