#!/usr/bin/env python3
"""The cost model of docs/scale-out.md, calibrated on bench/scale_measure.sh's results.

    bench/scale_model.py [RESULTS_DIR] [--update DOC]  (default bench/results/scale-out)

prints the doc's tables (Markdown): the calibrated link and compute terms, the model's
prediction beside each measured figure of the Llama-3.2-1B-shaped run, and projections for
Llama-3-8B and Llama-3-70B shapes at TP 2/4/8 and PP 2/4 over 25 and 100 GbE. Every number
in the doc comes from here; change an assumption below and rerun. With --update DOC the
tables replace the text between DOC's BEGIN_MARK and END_MARK lines instead.

Terms (T tensor-parallel ranks, P pipeline stages, L layers, h hidden size, b bytes per
activation element: 4, the all-reduce is fp32 today):
  all-reduce of S bytes (ring): 2(T-1)/T * S / B + 2(T-1) * alpha
  TP per token per layer: 2 all-reduces of h*b bytes per token in the pass
  TP output head: split by vocabulary rows (each rank reads and computes 1/T of it), then one
    all-gather of the logits, n_vocab * 4 bytes per row (ring): (T-1)/T * S / B + (T-1) * alpha
  PP per stage boundary: one send of h*b bytes per token, alpha + S / B
  pipeline bubble with M micro-batches: (P-1)/(M+P-1) of the time idle
  decode compute per token: weight bytes read / memory bandwidth (memory-bound)
  prefill compute per token: 2 * matrix parameters + attention FLOPs, / FLOP rate
"""
import json
import pathlib
import statistics
import sys

# ---- model shapes (Llama 3 family; matrices only: norms are negligible) -------------------
SHAPES = {
    # name: layers, hidden, feed-forward, heads, kv heads, vocab, tied embeddings
    "Llama-3.2-1B": (16, 2048, 8192, 32, 8, 128256, True),
    "Llama-3-8B": (32, 4096, 14336, 32, 8, 128256, False),
    "Llama-3-70B": (80, 8192, 28672, 64, 8, 128256, False),
}
Q4_0_BYTES_PER_PARAM = 18 / 32  # 32 weights in 16 bytes of nibbles + a 2-byte scale
ACT_BYTES = 4  # fp32 activations in every collective today; fp16/bf16 would be 2


def layer_params(name):
    L, h, ff, nh, nkv, vocab, tied = SHAPES[name]
    hd = h // nh
    return h * h * 2 + 2 * h * nkv * hd + 3 * h * ff  # q, o, k, v, gate, up, down


def head_params(name):
    L, h, ff, nh, nkv, vocab, tied = SHAPES[name]
    return vocab * h


def weight_bytes(name):
    """(bytes of the L layers' matrices, bytes of the output head), q4_0."""
    L = SHAPES[name][0]
    return L * layer_params(name) * Q4_0_BYTES_PER_PARAM, head_params(name) * Q4_0_BYTES_PER_PARAM


def prefill_flops(name, n):
    """FLOPs of one pass over an n-token prompt: the layers' matrices for every token, causal
    attention (QK^T and AV: 2 * 2 * n^2/2 * h per layer), the head for the last token."""
    L, h = SHAPES[name][:2]
    return 2 * L * layer_params(name) * n + 2 * L * n * n * h + 2 * head_params(name)


# ---- measurements ----------------------------------------------------------------------
def load(results):
    comm, runs = {}, {}
    for p in sorted(results.glob("comm_*_r*.json")):
        link, rnd = p.stem.split("_")[1], int(p.stem.split("_r")[-1])
        if p.stat().st_size > 0:
            comm.setdefault(link, {})[rnd] = json.loads(p.read_text())["results"]
    for p in sorted(results.glob("run_*_r*.json")):
        key, rnd = p.stem[len("run_"):p.stem.rindex("_r")], int(p.stem.split("_r")[-1])
        if p.stat().st_size > 0:  # an empty file: a run still going (or one that failed)
            runs.setdefault(key, {})[rnd] = json.loads(p.read_text())
    return comm, runs


def allreduce_curve(rounds):
    """bytes -> median us over rounds' medians (each round: median of its repetitions)."""
    by_size = {}
    for results in rounds.values():
        for r in results:
            if r["collective"] == "all_reduce_sum":
                by_size.setdefault(r["bytes"], []).append(r["median_us"])
    return {s: statistics.median(v) for s, v in sorted(by_size.items())}


def fit_link(curve, T=2):
    """alpha (s per ring step) and B (bytes/s) of t(S) = 2(T-1) alpha + 2(T-1)/T S / B,
    least squares on relative error (every size counts alike, 4 B as 64 MiB)."""
    # t = a + c S; minimize sum ((a + c S)/t - 1)^2: linear in (a, c) with rows (1/t, S/t).
    rows = [(1 / (t * 1e-6), s / (t * 1e-6)) for s, t in curve.items()]
    s11 = sum(x * x for x, _ in rows)
    s12 = sum(x * y for x, y in rows)
    s22 = sum(y * y for _, y in rows)
    r1 = sum(x for x, _ in rows)
    r2 = sum(y for _, y in rows)
    det = s11 * s22 - s12 * s12
    a = (r1 * s22 - r2 * s12) / det
    c = (s11 * r2 - s12 * r1) / det
    return a / (2 * (T - 1)), (2 * (T - 1) / T) / c


def allreduce_s(nbytes, T, alpha, B):
    if T == 1:
        return 0.0
    return 2 * (T - 1) / T * nbytes / B + 2 * (T - 1) * alpha


def allgather_s(nbytes, T, alpha, B):
    """Every rank ends with all nbytes, each having contributed nbytes / T (ring)."""
    if T == 1:
        return 0.0
    return (T - 1) / T * nbytes / B + (T - 1) * alpha


def logits_bytes(name, rows):
    return rows * SHAPES[name][5] * 4  # fp32 logits


def send_s(nbytes, alpha, B):
    return alpha + nbytes / B


def best(rounds, field):
    return max(r[field] for r in rounds.values())


# ---- the predictions -------------------------------------------------------------------
def tp_decode_s(name, T, bw, alpha, B, split_head=True):
    """One decode step of one sequence: every rank reads its share of the layers and of the
    head (split_head, as in the measured runs; the whole head when it is replicated), 2
    all-reduces per layer of h*b bytes, and with a split head the all-gather of the logits."""
    layers, head = weight_bytes(name)
    L, h = SHAPES[name][:2]
    if split_head:
        head, gather = head / T, allgather_s(logits_bytes(name, 1), T, alpha, B)
    else:
        gather = 0.0
    return (layers / T + head) / bw + 2 * L * allreduce_s(h * ACT_BYTES, T, alpha, B) + gather


def tp_prefill_s(name, n, T, flops, alpha, B, split_head=True):
    """The head computes the last token's logits only (then gathered when split)."""
    L, h = SHAPES[name][:2]
    head = 2 * head_params(name)
    if split_head:
        head, gather = head / T, allgather_s(logits_bytes(name, 1), T, alpha, B)
    else:
        gather = 0.0
    return ((prefill_flops(name, n) - 2 * head_params(name)) / T + head) / flops + \
        2 * L * allreduce_s(n * h * ACT_BYTES, T, alpha, B) + gather


def pp_decode_s(name, P, bw, alpha, B):
    """One sequence's decode step walks through all P stages in turn: no overlap."""
    layers, head = weight_bytes(name)
    h = SHAPES[name][1]
    return (layers + head) / bw + (P - 1) * send_s(h * ACT_BYTES, alpha, B)


def matrix_params(name):
    return SHAPES[name][0] * layer_params(name) + head_params(name)


def tp_batch_decode_tps(name, T, S, bw, flops, alpha, B):
    """Tokens/s of decode steps of S sequences at once: a step reads the weights once
    (memory-bound) or does 2 * params * S FLOPs (compute-bound), whichever is longer; the
    all-reduces carry S tokens, the logits' all-gather S rows. KV-cache reads are left out
    (short contexts)."""
    layers, head = weight_bytes(name)
    L, h = SHAPES[name][:2]
    lp, hp = L * layer_params(name), head_params(name)
    step = max((layers + head) / T / bw, 2 * (lp + hp) / T * S / flops)
    comm = 2 * L * allreduce_s(S * h * ACT_BYTES, T, alpha, B) + \
        allgather_s(logits_bytes(name, S), T, alpha, B)
    return S / (step + comm)


def pp_batch_decode_tps(name, P, S, bw, flops, alpha, B):
    """S sequences as P micro-batches of S/P in flight (the pipeline full, no bubble in the
    steady state): each stage, per micro-batch, reads its 1/P of the weights or computes its
    share, then sends S/P activations on."""
    layers, head = weight_bytes(name)
    h = SHAPES[name][1]
    m = S / P
    stage = max((layers + head) / P / bw, 2 * matrix_params(name) / P * m / flops)
    return m / (stage + send_s(m * h * ACT_BYTES, alpha, B))


def pp_prefill_s(name, n, P, M, flops, alpha, B):
    """An n-token prompt cut into M chunks that follow each other through P stages."""
    h = SHAPES[name][1]
    chunk = prefill_flops(name, n) / M / P / flops + send_s(n // M * h * ACT_BYTES, alpha, B)
    return (M + P - 1) * chunk


# ---- report ----------------------------------------------------------------------------
BEGIN_MARK = "<!-- tables: bench/scale_model.py -->"
END_MARK = "<!-- end of tables -->"


def main():
    args = sys.argv[1:]
    doc = None
    if "--update" in args:
        i = args.index("--update")
        doc = pathlib.Path(args[i + 1])
        del args[i:i + 2]
    results = pathlib.Path(args[0] if args else "bench/results/scale-out")
    comm, runs = load(results)
    out = []
    w = out.append

    w("### Links (bench-comm, 2 ranks, all_reduce_sum; median over rounds of each round's "
      "median)\n")
    links = {}
    curves = {link: allreduce_curve(rounds) for link, rounds in comm.items()}
    sizes = sorted(set().union(*[c.keys() for c in curves.values()]))
    order = [link for link in ("shm", "veth", "delay") if link in curves]
    w("| bytes | " + " | ".join(f"{l} us (rounds)" for l in order) + " |")
    w("|---:|" + "---:|" * len(order))
    for s in sizes:
        cells = []
        for l in order:
            per = [next(r["median_us"] for r in comm[l][k] if r["collective"] == "all_reduce_sum"
                        and r["bytes"] == s) for k in sorted(comm[l])]
            cells.append(f"{curves[l][s]:.1f} (" + ", ".join(f"{x:.0f}" for x in per) + ")")
        w(f"| {s} | " + " | ".join(cells) + " |")
    w("")
    w("| link | alpha, us per ring step | B, GB/s | model at 8 KiB, us (measured) | model at "
      "4 MiB, us (measured) |")
    w("|---|---:|---:|---:|---:|")
    for l in order:
        alpha, B = fit_link(curves[l])
        links[l] = (alpha, B)
        near = lambda x: min(curves[l], key=lambda s: abs(s - x))
        s1, s2 = near(8192), near(4 << 20)
        w(f"| {l} | {alpha * 1e6:.1f} | {B / 1e9:.3f} | {allreduce_s(s1, 2, alpha, B) * 1e6:.0f} "
          f"({curves[l][s1]:.0f} at {s1} B) | {allreduce_s(s2, 2, alpha, B) * 1e6:.0f} "
          f"({curves[l][s2]:.0f} at {s2} B) |")
    w("")

    # Compute terms from the one-process run (2 threads).
    tp1 = runs["tp1"]
    n_prompt = len(next(iter(tp1.values()))["prompt_tokens"])
    pp1, tg1 = best(tp1, "prompt_tokens_per_second"), best(tp1, "generation_tokens_per_second")
    m = "Llama-3.2-1B"
    layers_b, head_b = weight_bytes(m)
    bw = (layers_b + head_b) * tg1  # effective bytes/s of decode
    flops = prefill_flops(m, n_prompt) / (n_prompt / pp1)  # effective FLOP/s of prefill
    w(f"### Compute terms (one process, `-t 2`, best of {len(tp1)} rounds)\n")
    w(f"* decode: {tg1:.2f} tok/s reading {(layers_b + head_b) / 1e6:.0f} MB of q4_0 matrices "
      f"per token: effective bandwidth {bw / 1e9:.2f} GB/s")
    w(f"* prefill: {n_prompt} tokens at {pp1:.1f} tok/s, {prefill_flops(m, n_prompt) / 1e9:.0f} "
      f"GFLOP: effective {flops / 1e9:.1f} GFLOP/s")
    w("")

    # TP=2 on this machine, two ranks of one thread each. Model A: each rank has half of the
    # one-process bandwidth and FLOP rate (the TP=1 calibration). Model B: the compute time
    # of the shared-memory TP=2 run itself (its time less its measured communication), plus
    # each link's modeled communication: what changes between the links is the link alone.
    w("### Llama-3.2-1B shapes, TP=2 (`-t 1` per rank) vs one process (`-t 2`): model vs "
      "measured\n")
    w("Measured: every round, in order (the models use the best one). Model A: TP=1's compute terms "
      "split over the ranks; model B: the compute time of the shm TP=2 run (time less measured "
      "communication) plus the link's modeled all-reduces.\n")
    w("| run | prefill tok/s: measured (rounds) | model A | model B | decode tok/s: measured "
      "(rounds) | model A | model B | comm share of decode: measured (rank 0) | model B "
      "| comm share of prefill: measured | model B |")
    w("|---|---|---:|---:|---|---:|---:|---|---:|---|---:|")
    fmt = lambda rs, f: ", ".join(f"{rs[k][f]:.2f}" for k in sorted(rs))
    w(f"| TP=1 | {fmt(tp1, 'prompt_tokens_per_second')} | "
      f"{n_prompt / tp_prefill_s(m, n_prompt, 1, flops, 0, 1):.2f} | - | "
      f"{fmt(tp1, 'generation_tokens_per_second')} | {1 / tp_decode_s(m, 1, bw, 0, 1):.2f} | - "
      "| - | - | - | - |")

    def phases(r):
        """(prefill s, prefill comm s, decode s per token, decode comm s per token)."""
        n_gen = len(r["tokens"])
        t_pre = n_prompt / r["prompt_tokens_per_second"]
        t_gen = n_gen / r["generation_tokens_per_second"]
        c = r["communication"]
        return t_pre, c["prompt_seconds"], t_gen / n_gen, c["generation_seconds"] / n_gen

    L, h = SHAPES[m][:2]
    shm_runs = runs.get("tp2_shm", {})
    if shm_runs:  # the best round's compute: its phases less their communication
        pre_c = min(phases(r)[0] - phases(r)[1] for r in shm_runs.values())
        dec_c = min(phases(r)[2] - phases(r)[3] for r in shm_runs.values())
    for l in order:
        rs = runs.get(f"tp2_{l}")
        if not rs:
            continue
        alpha, B = links[l]
        # The measured runs split the head by vocabulary rows: its logits are gathered once
        # per step (the last prompt token's, or the decoded token's).
        gather = allgather_s(logits_bytes(m, 1), 2, alpha, B)
        comm_pre = 2 * L * allreduce_s(n_prompt * h * ACT_BYTES, 2, alpha, B) + gather
        comm_dec = 2 * L * allreduce_s(h * ACT_BYTES, 2, alpha, B) + gather
        a_pre = n_prompt / tp_prefill_s(m, n_prompt, 2, flops / 2, alpha, B)
        a_dec = 1 / tp_decode_s(m, 2, bw / 2, alpha, B)
        b_pre = n_prompt / (pre_c + comm_pre)
        b_dec = 1 / (dec_c + comm_dec)
        sh_dec = ", ".join(f"{100 * phases(rs[k])[3] / phases(rs[k])[2]:.1f}%" for k in sorted(rs))
        sh_pre = ", ".join(f"{100 * phases(rs[k])[1] / phases(rs[k])[0]:.1f}%" for k in sorted(rs))
        w(f"| TP=2 {l} | {fmt(rs, 'prompt_tokens_per_second')} | {a_pre:.2f} | {b_pre:.2f} | "
          f"{fmt(rs, 'generation_tokens_per_second')} | {a_dec:.2f} | {b_dec:.2f} | {sh_dec} | "
          f"{100 * comm_dec / (dec_c + comm_dec):.1f}% | {sh_pre} | "
          f"{100 * comm_pre / (pre_c + comm_pre):.1f}% |")
    w("")

    # ---- projections --------------------------------------------------------------------
    hosts = {
        "this machine": (bw, flops, 24),
        "server": (SERVER_BW, SERVER_FLOPS, SERVER_MEM_GB),
    }
    alpha_link, _ = links["delay"]
    nets = {
        "25 GbE": (alpha_link, 25e9 / 8 * TCP_EFFICIENCY),
        "100 GbE": (alpha_link, 100e9 / 8 * TCP_EFFICIENCY),
    }
    for host, (hbw, hfl, mem) in hosts.items():
        w(f"### Projections, per host: {host} ({hbw / 1e9:.1f} GB/s decode bandwidth, "
          f"{hfl / 1e9:.0f} GFLOP/s prefill, {mem} GB)\n")
        w(f"alpha {alpha_link * 1e6:.0f} us per message (the delay link's fit), "
          f"B = {TCP_EFFICIENCY:.0%} of the line rate. decode 1: tok/s of one sequence; "
          f"decode {BATCH}: tok/s of {BATCH} sequences decoding together (PP: P "
          f"micro-batches of {BATCH}/P); prefill: tok/s of one {PROMPT}-token prompt (PP: "
          f"{PP_CHUNKS} chunks), fp32 all-reduces and fp16 ones. A plan whose weights do not fit "
          "a host's memory is marked *.\n")
        w(f"| model | plan | weights GB/host | net | decode 1 | decode {BATCH} | prefill fp32 "
          "| prefill fp16 | comm share, decode 1 |")
        w("|---|---|---:|---|---:|---:|---:|---:|---:|")
        for name in ("Llama-3-8B", "Llama-3-70B"):
            lb, hb = weight_bytes(name)
            L, h = SHAPES[name][:2]
            fits = lambda gb: f"{gb:.1f}" + ("" if gb < 0.8 * mem else " *")
            w(f"| {name} | 1 host | {fits((lb + hb) / 1e9)} | - | "
              f"{1 / tp_decode_s(name, 1, hbw, 0, 1):.2f} | "
              f"{tp_batch_decode_tps(name, 1, BATCH, hbw, hfl, 0, 1):.1f} | "
              f"{PROMPT / tp_prefill_s(name, PROMPT, 1, hfl, 0, 1):.1f} | - | - |")
            for net, (alpha, B) in nets.items():
                for T in (2, 4, 8):
                    t = tp_decode_s(name, T, hbw, alpha, B)
                    c = 2 * L * allreduce_s(h * ACT_BYTES, T, alpha, B) + \
                        allgather_s(logits_bytes(name, 1), T, alpha, B)
                    pre = PROMPT / tp_prefill_s(name, PROMPT, T, hfl, alpha, B)
                    pre16 = PROMPT / tp_prefill_s(name, PROMPT, T, hfl, alpha, 2 * B)
                    bat = tp_batch_decode_tps(name, T, BATCH, hbw, hfl, alpha, B)
                    w(f"| {name} | TP={T} | {fits((lb + hb) / T / 1e9)} | {net} | {1 / t:.2f} | "
                      f"{bat:.1f} | {pre:.1f} | {pre16:.1f} | {100 * c / t:.0f}% |")
                for P in (2, 4):
                    t = pp_decode_s(name, P, hbw, alpha, B)
                    bat = pp_batch_decode_tps(name, P, BATCH, hbw, hfl, alpha, B)
                    pre = PROMPT / pp_prefill_s(name, PROMPT, P, PP_CHUNKS, hfl, alpha, B)
                    pre16 = PROMPT / pp_prefill_s(name, PROMPT, P, PP_CHUNKS, hfl, alpha, 2 * B)
                    c = (P - 1) * send_s(h * ACT_BYTES, alpha, B)
                    w(f"| {name} | PP={P} | {fits((lb + hb) / P / 1e9)} | {net} | {1 / t:.2f} | "
                      f"{bat:.1f} | {pre:.1f} | {pre16:.1f} | {100 * c / t:.0f}% |")
        w("")

    # How much the per-message latency decides decode under TP.
    w("### Decode of one sequence under TP, by per-message latency alpha (server hosts, "
      "25 GbE)\n")
    alphas = [("veth fit", links["veth"][0]), ("25 us", 25e-6), ("delay fit", alpha_link)]
    w("| model | plan | " + " | ".join(f"alpha {n} ({a * 1e6:.0f} us)" for n, a in alphas) +
      " |")
    w("|---|---|" + "---:|" * len(alphas))
    for name in ("Llama-3-8B", "Llama-3-70B"):
        w(f"| {name} | 1 host | " + " | ".join(
            f"{1 / tp_decode_s(name, 1, SERVER_BW, 0, 1):.2f}" for _ in alphas) + " |")
        for T in (2, 4, 8):
            w(f"| {name} | TP={T} | " + " | ".join(
                f"{1 / tp_decode_s(name, T, SERVER_BW, a, 25e9 / 8 * TCP_EFFICIENCY):.2f}"
                for _, a in alphas) + " |")
    w("")
    text = "\n".join(out)
    if doc is None:
        print(text)
        return
    page = doc.read_text()
    head, rest = page.split(BEGIN_MARK + "\n", 1)
    _, tail = rest.split(END_MARK, 1)
    doc.write_text(head + BEGIN_MARK + "\n" + text + "\n" + END_MARK + tail)


# ---- assumptions of the projections (stated in docs/scale-out.md) ----------------------
SERVER_BW = 200e9  # effective decode bandwidth of one server (a DDR5 socket, ~60% of peak)
SERVER_FLOPS = 2e12  # effective prefill rate of one server (AVX-512 int8 dot products)
SERVER_MEM_GB = 256
TCP_EFFICIENCY = 0.9  # fraction of the line rate one TCP stream carries
PROMPT = 512
PP_CHUNKS = 4
BATCH = 32

if __name__ == "__main__":
    main()
