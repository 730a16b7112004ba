#!/usr/bin/env python3
"""Greedy identity of tensor and pipeline parallelism: N prompts x T tokens through `tessera
run` under `mpirun -np TP*PP --tensor-parallel-size TP --pipeline-parallel-size PP` (1
thread per rank) against one process (2 threads). The row-parallel sums of TP are split
between ranks, so logits may differ in the last bits; a pipeline splits no sum. A greedy
output that parts from one process's is shown with the two best logits of both at the first
differing position (`tessera logits`), to tell a near-tie from an error.

  bench/tp_identity.py -m MODEL [--tp 2] [--pp 1] [--tokens 128] [--prompts 20] [--f32-kv]
                       [--exact] [--steps]

Prints one line per prompt and a summary with the largest |logit difference| at the last
prompt position of each prompt; --steps adds the largest over every step of the first
prompt (its prompt and generated tokens, all positions through `tessera logits`)."""
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
    "A shopping list for a week of dinners:\n1.",
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


def parallel(par):
    """mpirun's argv and tessera's flags for par = (tp, pp, extra flags); (1, 1): none."""
    tp, pp, extra = par
    if tp * pp == 1:
        return [BIN], ["-t", "2"]
    return ([*MPI, "-np", str(tp * pp), BIN],
            ["-t", "1", "--tensor-parallel-size", str(tp), "--pipeline-parallel-size", str(pp),
             *extra])


ONE = (1, 1, [])


def logits(model, ids, par, extra, last=True):
    launch, flags = parallel(par)
    args = ["logits", "-m", model, "--ids", ",".join(map(str, ids)), *(["--last"] if last else []),
            *extra]
    rows = json.loads(run([*launch, *args, *flags]))["logits"]
    return rows[0] if last else rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--tp", "--np", type=int, default=3, help="tensor-parallel size")
    ap.add_argument("--pp", type=int, default=1, help="pipeline-parallel size")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--f32-kv", action="store_true", help="an f32 KV cache on both sides")
    ap.add_argument("--exact", action="store_true", help="--tp-exact on the parallel side")
    ap.add_argument("--steps", action="store_true",
                    help="max |logit difference| over every step of the first prompt")
    a = ap.parse_args()
    extra = ["--kv-cache-dtype", "f32"] if a.f32_kv else []
    par = (a.tp, a.pp, ["--tp-exact"] if a.exact else [])
    name = f"TP={a.tp} PP={a.pp}" + (" exact" if a.exact else "")
    same, worst, first = 0, 0.0, None
    for prompt in PROMPTS[:a.prompts]:
        base = ["run", "-m", a.model, "-p", prompt, "-n", str(a.tokens), "--temp", "0", "--json",
                *extra]
        one = json.loads(run([BIN, *base, "-t", "2"]))
        launch, flags = parallel(par)
        tp = json.loads(run([*launch, *base, *flags]))
        first = first or one
        # The prompt's last position, on both sides: how far the logits move.
        l1 = logits(a.model, one["prompt_tokens"], ONE, extra)
        lp = logits(a.model, one["prompt_tokens"], par, extra)
        d = max(abs(x - y) for x, y in zip(l1, lp))
        worst = max(worst, d)
        if one["tokens"] == tp["tokens"]:
            same += 1
            print(f"identical  {len(one['tokens']):4d} tokens  max|dlogit| {d:.2e}  {prompt!r}",
                  flush=True)
            continue
        k = next(i for i, (x, y) in enumerate(zip(one["tokens"], tp["tokens"])) if x != y)
        ids = one["prompt_tokens"] + one["tokens"][:k]
        r1, rp = logits(a.model, ids, ONE, extra), logits(a.model, ids, par, extra)
        t1, tp2 = top2(r1), top2(rp)
        moved = max(abs(x - y) for x, y in zip(r1, rp))
        print(f"DIFFERENT at token {k}: one process top-2 {fmt(t1)}, {name} top-2 {fmt(tp2)}, "
              f"gap {t1[0][1] - t1[1][1]:.3f}, max|dlogit| there {moved:.3f}  {prompt!r}",
              flush=True)
    print(f"{same}/{min(a.prompts, len(PROMPTS))} identical x {a.tokens} tokens at {name}; "
          f"max |logit difference| at the prompts' last position {worst:.3e}")
    if a.steps and first is not None:
        # Every position of the first prompt and its generated tokens, teacher-forced.
        ids = first["prompt_tokens"] + first["tokens"]
        r1, rp = logits(a.model, ids, ONE, extra, False), logits(a.model, ids, par, extra, False)
        d = max(abs(x - y) for ra, rb in zip(r1, rp) for x, y in zip(ra, rb))
        print(f"first prompt, {len(ids)} positions: max |logit difference| {d:.3e}")


if __name__ == "__main__":
    main()
