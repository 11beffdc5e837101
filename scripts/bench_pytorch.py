#!/usr/bin/env python3
"""PyTorch reference for `convexformer bench --training` (issue #3).

Trains the same two models as src/baselines/ on CPU with full-batch Adam and
reports training steps per second, f32 and f64, at the size of the Rust
benchmark: N=1000 samples, n=16 tokens, d=32 features, h=8 heads, c=1 output,
squared loss. A step is one forward pass, one backward pass and one Adam update
(and, for projected simplex attention, the projection of the attention rows).

Models (identical formulas to the Rust code):
  simplex attention  f(X) = sum_j (a_j^T X v_j) o_j,  a_j = softmax(logits_j)
                     or a_j projected onto the simplex after every step;
                     penalty beta/2 sum_j (|v_j|^2 + |o_j|_1^2)
  softmax attention  f(X) = sum_j softmax_k(x_r^T Q_j K_j^T x_k / sqrt(d_k)) x_k^T V_j O_j,
                     r the last token, d_k = d; penalty beta/2 (|Q|^2+|K|^2+|V|^2+|O|^2)
The objective differentiated is P/N, as in Rust.

Both sides use the same formulas (the block-matrix product of simplex attention,
W_j = Q_j K_j^T folded once per step in softmax attention) and the same optimizer
(Adam; projected attention rows with one second moment per row). Each case is
timed in --repeats windows: the best and the median steps/second are reported
(on a shared machine the best is the least disturbed).

Usage: python3 scripts/bench_pytorch.py [--seconds 2] [--repeats 5] [--threads 2] [--json out.json]
Not needed by CI; exits with status 2 and a message when torch is missing.
"""

import argparse
import json
import math
import sys
import time

try:
    import torch
except ImportError:
    print(
        "bench_pytorch.py: PyTorch is not installed (pip install torch); "
        "the Rust numbers come from `convexformer bench --training`",
        file=sys.stderr,
    )
    sys.exit(2)

N, n, d, h, c = 1000, 16, 32, 8, 1
BETA = 1.0


def project_rows_onto_simplex(a):
    """Euclidean projection of every row of a onto the unit simplex (sort-based)."""
    u, _ = torch.sort(a, dim=1, descending=True)
    css = torch.cumsum(u, dim=1) - 1.0
    k = torch.arange(1, a.shape[1] + 1, dtype=a.dtype)
    # The condition holds on a prefix of the sorted entries (always the first).
    rho = ((u - css / k) > 0).sum(1, keepdim=True) - 1
    tau = css.gather(1, rho) / (rho + 1).to(a.dtype)
    return torch.clamp(a - tau, min=0.0)


class Simplex(torch.nn.Module):
    def __init__(self, projected, dtype, gen):
        super().__init__()
        self.projected = projected
        if projected:
            a = torch.full((h, n), 1.0 / n, dtype=dtype) + 0.1 / n * torch.randn(h, n, generator=gen, dtype=dtype)
            a = project_rows_onto_simplex(a)
        else:
            a = 0.1 * torch.randn(h, n, generator=gen, dtype=dtype)
        self.attn = torch.nn.Parameter(a)
        self.V = torch.nn.Parameter(torch.randn(d, h, generator=gen, dtype=dtype) / math.sqrt(d))
        self.O = torch.nn.Parameter(torch.randn(h, c, generator=gen, dtype=dtype) / math.sqrt(h))

    def forward(self, x):
        b = x.shape[0]
        a = self.attn if self.projected else torch.softmax(self.attn, dim=1)
        xv = (x.reshape(b * n, d) @ self.V).reshape(b, n * h)
        # s_ij = sum_k a_jk (X_i v_j)_k as one product with the (n*h) x h block matrix.
        blocks = (a.t().reshape(n, h, 1) * torch.eye(h, dtype=a.dtype).reshape(1, h, h)).reshape(n * h, h)
        return (xv @ blocks) @ self.O

    def penalty(self):
        return 0.5 * BETA * (self.V.pow(2).sum() + self.O.abs().sum(1).pow(2).sum())

    @torch.no_grad()
    def after_step(self):
        if self.projected:
            self.attn.copy_(project_rows_onto_simplex(self.attn))


class Softmax(torch.nn.Module):
    def __init__(self, dtype, gen):
        super().__init__()
        dk = d
        s = 1.0 / math.sqrt(d)
        self.dk = dk
        self.Q = torch.nn.Parameter(s * torch.randn(h, d, dk, generator=gen, dtype=dtype))
        self.K = torch.nn.Parameter(s * torch.randn(h, d, dk, generator=gen, dtype=dtype))
        self.V = torch.nn.Parameter(s * torch.randn(h, d, dk, generator=gen, dtype=dtype))
        self.O = torch.nn.Parameter(torch.randn(h, dk, c, generator=gen, dtype=dtype) / math.sqrt(h * dk))

    def forward(self, x):
        b = x.shape[0]
        # W_j = Q_j K_j^T / sqrt(d_k), side by side: d x (h*d).
        w = torch.bmm(self.Q, self.K.transpose(1, 2)) / math.sqrt(self.dk)
        wcat = w.transpose(0, 1).reshape(d, h * d)
        u = (x[:, n - 1, :] @ wcat).reshape(b, h, d)  # x_r^T W_j, the read-out token
        p = torch.softmax(torch.bmm(u, x.transpose(1, 2)), dim=2)  # B x h x n
        m = torch.bmm(p, x)  # B x h x d
        vo = torch.bmm(self.V, self.O)  # h x d x c
        return m.reshape(b, h * d) @ vo.reshape(h * d, c)

    def penalty(self):
        return 0.5 * BETA * sum(p.pow(2).sum() for p in (self.Q, self.K, self.V, self.O))

    def after_step(self):
        pass


class RowAdam:
    """Adam with one second moment per row (as src/baselines/optim.rs), for the
    projected attention rows."""

    def __init__(self, p, lr):
        self.p, self.lr, self.t = p, lr, 0
        self.m = torch.zeros_like(p)
        self.v = torch.zeros(p.shape[0], 1, dtype=p.dtype)

    @torch.no_grad()
    def step(self):
        g = self.p.grad
        self.t += 1
        self.m.mul_(0.9).add_(g, alpha=0.1)
        self.v.mul_(0.999).add_(g.pow(2).mean(1, keepdim=True), alpha=0.001)
        denom = (self.v / (1 - 0.999**self.t)).sqrt_().add_(1e-8)
        self.p.sub_(self.lr / (1 - 0.9**self.t) * self.m / denom)
        self.p.grad = None


def bench(model, x, y, seconds, repeats):
    """Steps per second in `repeats` windows of seconds/repeats: (best, median, total steps)."""
    lr = 1e-3
    rows = getattr(model, "projected", False)
    params = [p for name, p in model.named_parameters() if not (rows and name == "attn")]
    opt = torch.optim.Adam(params, lr=lr)
    row_opt = RowAdam(model.attn, lr) if rows else None

    def step():
        opt.zero_grad(set_to_none=True)
        yhat = model(x)
        loss = 0.5 * (yhat - y).pow(2).sum() / N + model.penalty() / N
        loss.backward()
        opt.step()
        if row_opt is not None:
            row_opt.step()
        model.after_step()

    for _ in range(3):
        step()
    rates, total = [], 0
    for _ in range(repeats):
        steps, t0 = 0, time.perf_counter()
        while True:
            step()
            steps += 1
            el = time.perf_counter() - t0
            if el >= seconds / repeats and steps >= 3:
                break
        rates.append(steps / el)
        total += steps
    rates.sort()
    return rates[-1], rates[len(rates) // 2], total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per case")
    ap.add_argument("--repeats", type=int, default=5, help="timed windows per case (best and median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(
        f"PyTorch {torch.__version__} training benchmark: N={N}, n={n}, d={d}, h={h}, c={c}, "
        f"squared loss, full-batch Adam, {torch.get_num_threads()} threads"
    )
    print(f"{'model':<18} {'dtype':>5} {'steps':>8} {'best steps/s':>13} {'median':>10}")
    results = []
    for dtype, name in ((torch.float32, "f32"), (torch.float64, "f64")):
        x = torch.randn(N, n, d, generator=gen, dtype=dtype)
        y = torch.randn(N, c, generator=gen, dtype=dtype)
        for label, make in (
            ("simplex-logits", lambda: Simplex(False, dtype, gen)),
            ("simplex-projected", lambda: Simplex(True, dtype, gen)),
            ("softmax", lambda: Softmax(dtype, gen)),
        ):
            best, med, steps = bench(make(), x, y, args.seconds, args.repeats)
            results.append(
                {"method": label, "dtype": name, "steps": steps, "best_steps_per_second": best, "median_steps_per_second": med}
            )
            print(f"{label:<18} {name:>5} {steps:>8} {best:>13.1f} {med:>10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
