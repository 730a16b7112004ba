#!/usr/bin/env python3
"""The most any prompt-lookup (n-gram) proposer can speed up one greedy generation: the
output a model actually gives bounds what lookup can accept, whatever the proposer.

At each step the oracle proposes, among the continuations of every earlier occurrence (in
the prompt or the text generated so far) of the sequence's last n tokens (n = 1..NMAX),
the one that agrees longest with the output that follows, cut to exactly the tokens that
agree: no proposal is ever rejected, none is missed. A real proposer can only do worse.
Each step costs what `tessera bench` measured for a step of that many tokens (optimistic:
a bench step of n tokens computes one row of logits, a verification n), and the speedup is
(tokens x the decode step's cost) / (the steps' costs).

  bench/ngram_oracle.py BENCH.json RUN.json [RUN.json ...] [--nmax 4] [--kmax K]

BENCH.json: `tessera bench -m MODEL -p 2,3,...,16 -n 64 --json` (steps of n tokens; a
missing size is interpolated); RUN.json: `tessera run -m MODEL ... --temp 0 --json` of the
same model (its prompt and generated token ids)."""
import argparse
import json

import spec_bound  # bench/, the script's directory


def step_costs(path):
    """spec_bound.step_costs, with the sizes not measured interpolated."""
    cost = spec_bound.step_costs(path)
    sizes = sorted(cost)
    for n in range(1, sizes[-1] + 1):
        if n not in cost:
            lo = max(s for s in sizes if s < n)
            hi = min(s for s in sizes if s > n)
            cost[n] = cost[lo] + (cost[hi] - cost[lo]) * (n - lo) / (hi - lo)
    return cost


def oracle(prompt, gen, cost, nmax, kmax):
    """(speedup bound, steps, tokens accepted) for output `gen` after `prompt`."""
    ctx = list(prompt)
    i = steps = accepted = 0
    seconds = 0.0
    while i < len(gen):
        best = 0
        length = len(ctx)
        for n in range(1, min(nmax, length - 1) + 1):
            suffix = ctx[length - n:]
            for j in range(length - n):
                if ctx[j:j + n] != suffix:
                    continue
                a = 0
                while (a < kmax and i + a < len(gen) and j + n + a < length
                       and ctx[j + n + a] == gen[i + a]):
                    a += 1
                best = max(best, a)
        seconds += cost[1 + best]
        emitted = min(best + 1, len(gen) - i)
        ctx += gen[i:i + emitted]
        i += emitted
        steps += 1
        accepted += best
    return len(gen) * cost[1] / seconds, steps, accepted


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench_json")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--nmax", type=int, default=4, help="longest suffix matched")
    ap.add_argument("--kmax", type=int, default=0,
                    help="most tokens per proposal (default: the largest measured step - 1)")
    a = ap.parse_args()
    cost = step_costs(a.bench_json)
    kmax = a.kmax if a.kmax > 0 else max(cost) - 1
    if kmax + 1 > max(cost):
        raise SystemExit(f"--kmax {kmax} needs a measured step of {kmax + 1} tokens")
    for path in a.runs:
        with open(path) as f:
            run = json.load(f)
        gen = run["tokens"]
        s, steps, acc = oracle(run["prompt_tokens"], gen, cost, a.nmax, kmax)
        print(f"{path}: {acc} of {len(gen)} tokens can be accepted, in {steps} steps; "
              f"speedup at most {s:.2f}x")


if __name__ == "__main__":
    main()
