#!/usr/bin/env python3
"""Greedy identity of tensor parallelism: N prompts x T tokens through `tessera run` under
`mpirun -np P --tensor-parallel-size P` (1 thread per rank) against one process (2 threads).
The row-parallel sums are split between ranks, so logits may differ in the last bits; a
greedy output that parts from one process's is shown with the two best logits of both at
the first differing position (`tessera logits`), to tell a near-tie from an error.

  bench/tp_identity.py -m MODEL [--np 3] [--tokens 128] [--prompts 20] [--f32-kv] [--exact]

Prints one line per prompt and a summary with the largest |logit difference| at the last
prompt position of each prompt."""
import argparse
import json
import os
import pathlib
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("TESSERA_BIN", str(ROOT / "build" / "tessera"))
MPI = [shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "--oversubscribe"]
ENV = {**os.environ, "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "To make a cup of tea, first",
    "The theory of relativity states that",
    "In Python, a list comprehension",
    "The best way to learn a new language is",
    "Photosynthesis is the process by which",
    "Here is a short poem about the sea:\n",
    "SELECT name, age FROM users WHERE",
    "The French Revolution began in",
    "A healthy breakfast should include",
    "The main difference between a virus and a bacterium is",
    "Dear hiring manager,",
    "The largest planet in the solar system",
    "Water boils at",
    "#include <stdio.h>\nint main() {",
    "The stock market crashed because",
    "My favorite book is",
]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{p.stderr}")
    return p.stdout


def top2(row):
    i = max(range(len(row)), key=row.__getitem__)
    j = max((k for k in range(len(row)) if k != i), key=row.__getitem__)
    return (i, row[i]), (j, row[j])


def fmt(t):
    return "[" + ", ".join(f"{i}: {v:.3f}" for i, v in t) + "]"


def logits(model, ids, np_, extra, tp_extra=()):
    args = ["logits", "-m", model, "--ids", ",".join(map(str, ids)), "--last", *extra]
    cmd = [*MPI, "-np", str(np_), BIN, *args, "-t", "1", "--tensor-parallel-size", str(np_),
           *tp_extra] if np_ > 1 else [BIN, *args, "-t", "2"]
    return json.loads(run(cmd))["logits"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--np", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--f32-kv", action="store_true", help="an f32 KV cache on both sides")
    ap.add_argument("--exact", action="store_true", help="--tp-exact on the parallel side")
    a = ap.parse_args()
    extra = ["--kv-cache-dtype", "f32"] if a.f32_kv else []
    tpx = ["--tp-exact"] if a.exact else []
    same, worst = 0, 0.0
    for prompt in PROMPTS[:a.prompts]:
        base = ["run", "-m", a.model, "-p", prompt, "-n", str(a.tokens), "--temp", "0", "--json",
                *extra]
        one = json.loads(run([BIN, *base, "-t", "2"]))
        tp = json.loads(run([*MPI, "-np", str(a.np), BIN, *base, "-t", "1",
                             "--tensor-parallel-size", str(a.np), *tpx]))
        # The prompt's last position, on both sides: how far the logits move.
        l1 = logits(a.model, one["prompt_tokens"], 1, extra)
        lp = logits(a.model, one["prompt_tokens"], a.np, extra, tpx)
        d = max(abs(x - y) for x, y in zip(l1, lp))
        worst = max(worst, d)
        if one["tokens"] == tp["tokens"]:
            same += 1
            print(f"identical  {len(one['tokens']):4d} tokens  max|dlogit| {d:.2e}  {prompt!r}")
            continue
        k = next(i for i, (x, y) in enumerate(zip(one["tokens"], tp["tokens"])) if x != y)
        ids = one["prompt_tokens"] + one["tokens"][:k]
        r1, rp = logits(a.model, ids, 1, extra), logits(a.model, ids, a.np, extra, tpx)
        t1, tp2 = top2(r1), top2(rp)
        moved = max(abs(x - y) for x, y in zip(r1, rp))
        print(f"DIFFERENT at token {k}: one process top-2 {fmt(t1)}, TP top-2 {fmt(tp2)}, "
              f"gap {t1[0][1] - t1[1][1]:.3f}, max|dlogit| there {moved:.3f}  {prompt!r}")
    print(f"{same}/{min(a.prompts, len(PROMPTS))} identical x {a.tokens} tokens at TP={a.np}; "
          f"max |logit difference| at the prompts' last position {worst:.3e}")


if __name__ == "__main__":
    main()
