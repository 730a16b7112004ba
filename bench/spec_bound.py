#!/usr/bin/env python3
"""The most speculative decoding can speed up single-stream decode on this machine, from
measured step costs: a step of n tokens (`tessera bench -p 2,3,...`: one forward pass of n
tokens, the time of which is what a verification of n - 1 proposals costs at least; it
computes one row of logits where a verification computes n, so the bound is optimistic).

A decode step's cost is the tg test's time per token when BENCH.json has one (else pp1).
A proposer of k tokens accepted each with probability alpha emits E(k) = (1 - alpha^(k+1))
/ (1 - alpha) tokens per step (the expected length with the bonus token), so its speedup over
plain decode is E(k) * cost(1) / (cost(k + 1) + k * c * cost(1)), c = the proposer's cost per
token against a decode step of the target (0 for n-gram lookup; a draft model's decode time
over the target's). Prints, per alpha, the best k and its speedup, and the alpha a target
speedup needs (none: no alpha < 1 reaches it).

  bench/spec_bound.py BENCH.json [--draft-cost C] [--target 1.5]

BENCH.json: `tessera bench -m MODEL -p 2,3,4,5,6 -n 128 --json` (every pp test is a step
size, the tg test the decode step)."""
import argparse
import json


def step_costs(path):
    """{n: ms of a step of n tokens} from a `tessera bench --json` file."""
    with open(path) as f:
        tests = json.load(f)["tests"]
    cost = {t["n_prompt"]: t["avg_ns"] / 1e6 for t in tests if t["n_gen"] == 0}
    # A decode step: the tg test's time per token where there is one (a step at a growing
    # context, what speculation replaces), else pp1.
    tg = [t for t in tests if t["n_gen"] > 0 and t["n_prompt"] == 0]
    if tg:
        cost[1] = tg[0]["avg_ns"] / 1e6 / tg[0]["n_gen"]
    if 1 not in cost or len(cost) < 2:
        raise SystemExit("need tg (or pp1) and at least one larger step (bench -p 2,3,... -n N)")
    return cost


def speedup(cost, k, alpha, c):
    e = float(k + 1) if alpha >= 1.0 else (1.0 - alpha ** (k + 1)) / (1.0 - alpha)
    return e * cost[1] / (cost[k + 1] + k * c * cost[1])


def best(cost, alpha, c):
    ks = [k for k in range(1, max(cost)) if k + 1 in cost]
    return max(((speedup(cost, k, alpha, c), k) for k in ks), default=(1.0, 0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench_json")
    ap.add_argument("--draft-cost", type=float, default=0.0,
                    help="proposer's cost per token over a target decode step (n-gram: 0)")
    ap.add_argument("--target", type=float, default=1.5)
    a = ap.parse_args()
    cost = step_costs(a.bench_json)
    print("step cost, ms: " + ", ".join(f"{n}: {cost[n]:.2f} ({cost[n] / cost[1]:.2f}x)"
                                         for n in sorted(cost)))
    for alpha in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0):
        s, k = best(cost, alpha, a.draft_cost)
        print(f"alpha {alpha:.2f}: best k = {k}, speedup at most {s:.2f}x")
    need = next((x / 1000 for x in range(0, 1001) if best(cost, x / 1000, a.draft_cost)[0]
                 >= a.target), None)
    print(f"{a.target}x needs per-token acceptance >= {need:.3f} on every step" if need is not None
          else f"{a.target}x: not reachable at any acceptance with these step costs")


if __name__ == "__main__":
    main()
