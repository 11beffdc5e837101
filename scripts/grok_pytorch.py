#!/usr/bin/env python3
"""The grokking transformer of `convexformer grok` (model a, and model b with
--model convex) in PyTorch, for the steps-per-second comparison of issue #5.

Same data (every pair x op y mod p, tokens `x op y =`, vocabulary p + 7),
same network (token + position embeddings N(0, 1); L pre-norm blocks of causal
multi-head softmax attention without biases and a D -> 4D -> D ReLU MLP; final
layer norm; read-out at the last position), same initialization rules
(PyTorch defaults), same optimizer (AdamW, betas (0.9, 0.98), eps 1e-8, weight
decay 1, linear warmup (step+1)/warmup then constant), batch 512 drawn from a
fresh permutation every epoch. By default the last block computes its query,
residual and MLP for the last position only, exactly as the Rust model does;
--full computes every position (the usual implementation; same logits).

The split differs from the Rust one (a different shuffle), so accuracies
match in distribution, not pair by pair.

Runs where torch is installed (not in CI):

    pip install torch
    python3 scripts/grok_pytorch.py --steps 300 --threads 2           # speed
    python3 scripts/grok_pytorch.py --steps 20000 --out torch.csv     # a full run
"""

import argparse
import math
import sys
import time


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", default="div", choices=["add", "sub", "mul", "div", "poly", "poly2"])
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--frac", type=float, default=0.5)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--model", default="standard", choices=["standard", "convex"])
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.98)
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--penalty", type=float, default=1.0, help="convex model: lambda of the group penalty (decoupled)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="compute every position in the last block")
    ap.add_argument("--out", default=None, help="write the curve as CSV here")
    return ap.parse_args()


OPS = ["add", "sub", "mul", "div", "poly", "poly2"]


def answer(op, x, y, p):
    if op == "add":
        return (x + y) % p
    if op == "sub":
        return (x - y) % p
    if op == "mul":
        return x * y % p
    if op == "div":
        return None if y == 0 else x * pow(y, p - 2, p) % p
    if op == "poly":
        return (x * x + x * y + y * y) % p
    return (x ** 3 + x * y) % p


def main():
    args = parse()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        sys.exit(
            "grok_pytorch.py needs PyTorch, which is not installed here: `pip install torch`, "
            "then rerun. (The Rust side, `convexformer grok`, needs nothing else.)"
        )

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    p, n_tok = args.p, 4
    vocab = p + len(OPS) + 1
    op_tok, eq_tok = p + OPS.index(args.op), p + len(OPS)
    pairs = [(x, y) for x in range(p) for y in range(p) if answer(args.op, x, y, p) is not None]
    g = torch.Generator().manual_seed(args.split_seed)
    perm = torch.randperm(len(pairs), generator=g)
    n_train = round(len(pairs) * args.frac)
    data = torch.tensor([[x, op_tok, y, eq_tok] for x, y in pairs])
    labels = torch.tensor([answer(args.op, x, y, p) for x, y in pairs])
    tr, va = perm[:n_train], perm[n_train:]
    xt, yt, xv, yv = data[tr], labels[tr], data[va], labels[va]
    D, H = args.width, args.heads
    dh = D // H

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(D, 3 * D, bias=False)
            self.out = nn.Linear(D, D, bias=False)
            self.register_buffer("mask", torch.triu(torch.full((n_tok, n_tok), float("-inf")), 1))

        def forward(self, x, last):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).view(b, n, 3, H, dh).permute(2, 0, 3, 1, 4)
            if last:
                q = q[:, :, -1:]
                s = q @ k.transpose(-1, -2) / math.sqrt(dh)
                return self.out((s.softmax(-1) @ v).reshape(b, D))
            s = q @ k.transpose(-1, -2) / math.sqrt(dh) + self.mask
            return self.out((s.softmax(-1) @ v).transpose(1, 2).reshape(b, n, D))

    class ConvexAttention(nn.Module):
        """out = sum_j (W_j * M) X V_j O_j (src/layer); penalty
        1/2 sum_j ||W_j||_{inf,1}^2 + 1/2 ||V||^2 + 1/2 ||O||^2."""

        def __init__(self):
            super().__init__()
            tril = torch.tril(torch.ones(n_tok, n_tok))
            self.register_buffer("m", tril)
            base = tril / tril.sum(1, keepdim=True)
            self.w = nn.Parameter((base + 0.02 * torch.randn(H, n_tok, n_tok)) * tril)
            self.value = nn.Linear(D, D, bias=False)
            self.out = nn.Linear(D, D, bias=False)

        def forward(self, x, last):
            b, n, _ = x.shape
            xv = self.value(x).view(b, n, H, dh)
            w = self.w * self.m
            if last:
                return self.out(torch.einsum("jk,bkjd->bjd", w[:, -1], xv).reshape(b, D))
            return self.out(torch.einsum("jrk,bkjd->brjd", w, xv).reshape(b, n, D))

        def penalty(self):
            w = (self.w * self.m).abs().sum(2).amax(1)
            return 0.5 * ((w ** 2).sum() + (self.value.weight ** 2).sum() + (self.out.weight ** 2).sum())

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.attn = ConvexAttention() if args.model == "convex" else Attention()
            self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.ReLU(), nn.Linear(4 * D, D))

        def forward(self, x, last):
            a = self.attn(self.ln1(x), last)
            x = (x[:, -1] if last else x) + a
            return x + self.mlp(self.ln2(x))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, D)
            self.pos = nn.Parameter(torch.randn(n_tok, D))
            self.blocks = nn.ModuleList([Block() for _ in range(args.layers)])
            self.ln_f = nn.LayerNorm(D)
            self.unembed = nn.Linear(D, p)

        def forward(self, t):
            h = self.tok(t) + self.pos
            for i, blk in enumerate(self.blocks):
                h = blk(h, last=(i == len(self.blocks) - 1) and not args.full)
            if args.full:
                h = h[:, -1]
            return self.unembed(self.ln_f(h))

    model = Model()
    convex = [m for m in model.modules() if isinstance(m, ConvexAttention)]
    pen_params = {id(q) for m in convex for q in m.parameters()}
    decayed = [q for q in model.parameters() if id(q) not in pen_params]
    penalized = [q for q in model.parameters() if id(q) in pen_params]
    groups = [{"params": decayed, "weight_decay": args.weight_decay}]
    if penalized:
        groups.append({"params": penalized, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup)))

    @torch.no_grad()
    def evaluate(x, y):
        loss, hit = 0.0, 0
        for i in range(0, len(y), 4096):
            lg = model(x[i : i + 4096])
            loss += F.cross_entropy(lg, y[i : i + 4096], reduction="sum").item()
            hit += (lg.argmax(1) == y[i : i + 4096]).sum().item()
        return loss / len(y), hit / len(y)

    rows, secs, order, pos = [], 0.0, None, len(yt)
    bs = min(args.batch, len(yt))

    def record(step):
        tl, ta = evaluate(xt, yt)
        vl, vacc = evaluate(xv, yv)
        rows.append((step, secs, tl, ta, vl, vacc))
        print(f"step {step:6d}  {secs:8.2f}s  train {ta:.4f} ({tl:.3e})  val {vacc:.4f} ({vl:.3e})", flush=True)

    record(0)
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        if pos + bs > len(yt):
            order, pos = torch.randperm(len(yt)), 0
        idx = order[pos : pos + bs]
        pos += bs
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if penalized and args.penalty > 0:
            lr = opt.param_groups[0]["lr"]
            for m in convex:
                gr = torch.autograd.grad(m.penalty(), list(m.parameters()))
                with torch.no_grad():
                    for q, gq in zip(m.parameters(), gr):
                        q.sub_(lr * args.penalty * gq)
        sched.step()
        secs += time.perf_counter() - t0
        if step % args.eval_every == 0 or step == args.steps or (step < args.eval_every and step & (step - 1) == 0):
            record(step)

    def first(col):
        return next(((r[0], r[1]) for r in rows if r[col] >= 0.99), (None, None))

    (t99, t99s), (v99, v99s) = first(3), first(5)
    print(
        f"pytorch {torch.__version__}, {args.model} L={args.layers}, {torch.get_num_threads()} threads, "
        f"{'full' if args.full else 'last-position'} computation: {args.steps} steps in {secs:.2f}s = "
        f"{args.steps / secs:.2f} steps/s; train99 at step {t99}, val99 at step {v99}"
    )
    if args.out:
        with open(args.out, "w") as f:
            f.write("model,layers,seed,step,seconds,train_loss,train_acc,val_loss,val_acc\n")
            for r in rows:
                f.write(f"torch-{args.model},{args.layers},{args.seed},{r[0]},{r[1]:.6f},{r[2]:.6e},{r[3]:.6f},{r[4]:.6e},{r[5]:.6f}\n")


if __name__ == "__main__":
    main()
