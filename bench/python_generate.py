#!/usr/bin/env python3
"""Offline generation from Python: Tessera's LLM.generate beside llama-cpp-python.

Runs one engine per invocation (each lives in its own virtual environment), on the same
GGUF file, the same prompts and the same greedy settings; every choice generates exactly
--max-tokens tokens (Tessera: ignore_eos; llama-cpp-python: the end-of-generation tokens
biased away), so both do the same work. Prints one JSON line per measurement:

  tessera  batch   one LLM.generate call with every prompt (continuous batching)
  tessera  loop    one LLM.generate call per prompt, one after another
  llama-cpp loop   one Llama.create_completion per prompt (its high-level API runs one
                   sequence at a time)

bench/python_compare.sh runs both environments and prints a table.
"""
import argparse
import json
import sys
import time

TOPICS = ["a lighthouse keeper", "a lost robot", "the first snow", "a city under the sea",
          "an old violin", "a dragon who cannot fly", "the last train home", "a secret garden"]


def prompts(n):
    return [f"Write a short story about {TOPICS[i % len(TOPICS)]} (story {i}):"
            for i in range(n)]


def report(engine, mode, n_prompts, n_tokens, seconds, threads):
    print(json.dumps({"engine": engine, "mode": mode, "prompts": n_prompts,
                      "generated_tokens": n_tokens, "seconds": round(seconds, 3),
                      "tokens_per_second": round(n_tokens / seconds, 2),
                      "threads": threads}), flush=True)


def run_tessera(a, ps):
    from tessera import LLM, SamplingParams
    llm = LLM(a.model, threads=a.threads, kv_cache_memory=a.kv_cache_memory,
              max_num_seqs=a.max_num_seqs)
    sp = SamplingParams(temperature=0, max_tokens=a.max_tokens, ignore_eos=True)
    llm.generate(ps[:2], SamplingParams(temperature=0, max_tokens=4))  # warm-up
    if "batch" in a.modes:
        t0 = time.perf_counter()
        outs = llm.generate(ps, sp)
        dt = time.perf_counter() - t0
        report("tessera", "batch", len(ps), sum(len(o.outputs[0].token_ids) for o in outs), dt,
               a.threads)
    if "loop" in a.modes:
        t0 = time.perf_counter()
        n = sum(len(llm.generate(p, sp)[0].outputs[0].token_ids) for p in ps)
        report("tessera", "loop", len(ps), n, time.perf_counter() - t0, a.threads)


def run_llama_cpp(a, ps):
    import llama_cpp
    from llama_cpp import Llama
    llm = Llama(model_path=a.model, n_ctx=a.n_ctx, n_threads=a.threads,
                n_threads_batch=a.threads, n_batch=512, verbose=False)
    # No end-of-generation token may end a completion early: every id the vocabulary
    # marks as end-of-generation is biased away (llama.cpp's own ignore_eos does the same).
    eog = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)]
    bias = {t: -1e9 for t in eog}
    kw = dict(max_tokens=a.max_tokens, temperature=0.0, top_k=1, logit_bias=bias)
    llm.create_completion(ps[0], max_tokens=4, temperature=0.0)  # warm-up
    t0 = time.perf_counter()
    n = 0
    for p in ps:
        out = llm.create_completion(p, **kw)
        n += out["usage"]["completion_tokens"]
    report("llama-cpp-python", "loop", len(ps), n, time.perf_counter() - t0, a.threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", choices=["tessera", "llama-cpp"], required=True)
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct-Q4_1.gguf")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="batch,loop", help="tessera: batch, loop or both")
    ap.add_argument("--kv-cache-memory", default="1GiB", help="tessera's KV pool")
    ap.add_argument("--max-num-seqs", type=int, default=64, help="tessera's batch")
    ap.add_argument("--n-ctx", type=int, default=2048, help="llama-cpp-python's context")
    a = ap.parse_args()
    a.modes = a.modes.split(",")
    ps = prompts(a.prompts)
    (run_tessera if a.engine == "tessera" else run_llama_cpp)(a, ps)


if __name__ == "__main__":
    sys.exit(main())
