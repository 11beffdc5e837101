#!/usr/bin/env python3
"""The teacher experiment's softmax student (student (a) of `convexformer
teacher`, src/teacher/softmax_student.rs) in PyTorch, for the steps-per-second
comparison with `convexformer bench --training` (issue #13).

Same network (h heads of size k, no query/key/value biases, an output
projection with a bias; every position computed, the loss at positions 0-3
only: mean over those positions of ||y_hat - y||^2 / D), same step (AdamW,
lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2 on every parameter,
batch 64 from a fresh permutation every epoch), same size (1024 sentences of
16 tokens, D = 384, Gaussian stand-ins for the teacher's hidden states: a
step costs the same on any values).

Runs where torch is installed (not in CI):

    pip install torch
    python3 scripts/teacher_student_pytorch.py --steps 300 --threads 2
"""

import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loss-rows", action="store_true",
                    help="queries, attention rows and outputs at positions 0-3 only (the rows "
                         "the loss reads; keys and values at every token), as convexformer's "
                         "training step computes them")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("teacher_student_pytorch.py needs PyTorch: `pip install torch`, then rerun.")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    N, n, D, H, K = args.sentences, args.tokens, args.dim, args.heads, args.head_dim
    x = torch.randn(N, n, D)
    y = torch.randn(N, n, D)
    weight = torch.zeros(n, 1)
    weight[:4] = 1.0
    wq, wk, wv = (torch.nn.Parameter(torch.randn(D, H * K) / D**0.5) for _ in range(3))
    wo = torch.nn.Parameter(torch.randn(H * K, D) / (H * K) ** 0.5)
    bias = torch.nn.Parameter(y.mean((0, 1)).clone())
    params = [wq, wk, wv, wo, bias]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)

    rows = 4 if args.loss_rows else n  # the query rows computed

    def forward(xb):
        b = xb.shape[0]
        split = lambda x, w, t: (x.reshape(b * t, D) @ w).reshape(b, t, H, K).transpose(1, 2)
        q = split(xb[:, :rows], wq, rows)
        k, v = split(xb, wk, n), split(xb, wv, n)
        p = torch.softmax(q @ k.transpose(-1, -2) / K**0.5, dim=-1)
        ctx = (p @ v).transpose(1, 2).reshape(b * rows, H * K)
        return (ctx @ wo + bias).reshape(b, rows, D)

    order, pos, secs = None, N, 0.0
    for _ in range(args.steps):
        t0 = time.perf_counter()
        if pos + args.batch > N:
            order, pos = torch.randperm(N), 0
        idx = order[pos : pos + args.batch]
        pos += args.batch
        out = forward(x[idx])
        loss = (((out - y[idx][:, :rows]) * weight[:rows]) ** 2).sum() / (len(idx) * 4 * D)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        secs += time.perf_counter() - t0
    print(
        f"pytorch {torch.__version__}, teacher softmax student"
        f"{' (loss rows only)' if args.loss_rows else ''}, {torch.get_num_threads()} threads: "
        f"{args.steps} steps in {secs:.2f}s = {args.steps / secs:.2f} steps/s"
    )


if __name__ == "__main__":
    main()
