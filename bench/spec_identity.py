#!/usr/bin/env python3
"""Greedy identity of speculative decoding: for each (target, method) pair, 20 varied
prompts x 128 tokens with speculation on vs off must give identical tokens, through
`tessera run` (one process per prompt) and through `tessera serve` at concurrency 8.

  bench/spec_identity.py [--tokens 128] [--port 24100] [--only smollm2|gemma3] [--cli-prompts N]

Pairs: SmolLM2 Q4_1 + n-gram; SmolLM2 F16 (convert --allow-requantize) + Q4_1 draft;
Gemma 3 270M Q4_K_M + n-gram; Gemma 3 Q4_K_M + Q4_0 draft (requantized). Prints one line
per pair and mode with the count of identical outputs and the acceptance counters."""
import argparse
import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("TESSERA_BIN", str(ROOT / "build" / "tessera"))
TMP = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / "tessera-spec"

TEXT = ("The old lighthouse stood at the edge of the cliff. Every night its keeper climbed the "
        "stairs, lit the lamp and watched the ships pass. One stormy night the lamp went out, "
        "and the keeper had to find a way to warn a ship heading for the rocks. He took an oil "
        "lantern, ran down to the shore and waved it until the captain saw the light.")
CODE = ("def total(items):\n    x = 0\n    for i in items:\n        x += i.price * i.qty\n"
        "    return x\n")
USER_MSGS = [
    f"Repeat this text word for word:\n{TEXT}",
    f"Summarize this text in two sentences:\n{TEXT}",
    f"Rewrite this text in the present tense:\n{TEXT}",
    f"List the characters and objects in this text:\n{TEXT}",
    f"Rename the variable x to result in this code and add a docstring:\n{CODE}",
    f"Add type hints to this code:\n{CODE}",
    f"Translate this code to JavaScript:\n{CODE}",
    "Write a short poem about the sea.",
    "What is the capital of France? Explain its history briefly.",
    "List ten fruits, one per line.",
    "Explain how a bicycle works.",
    "Write a recipe for pancakes.",
    "Count from 1 to 40, separated by commas.",
    "Give three tips for learning a new language.",
    "Describe a sunset over the mountains.",
    "What are the planets of the solar system?",
    "Write a dialogue between a cat and a dog.",
    "Explain recursion to a child.",
    "Write a limerick about a programmer.",
    "Why is the sky blue?",
]
TEMPLATES = {
    "smollm2": "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
    "gemma3": "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n",
}


def convert(src, dst, typ):
    if not dst.exists():
        subprocess.run([BIN, "convert", "-m", src, "-o", dst, "--type", typ,
                        "--allow-requantize", "--no-progress"], check=True)
    return dst


def pairs(only):
    TMP.mkdir(parents=True, exist_ok=True)
    smol = ROOT / "models" / "SmolLM2-135M-Instruct-Q4_1.gguf"
    gemma = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
    out = []
    if only in (None, "smollm2"):
        out.append(("smollm2", smol, ["--speculative-method", "ngram"]))
        out.append(("smollm2", convert(smol, TMP / "smollm2-f16.gguf", "f16"),
                    ["--speculative-method", "draft", "--speculative-model", str(smol)]))
    if only in (None, "gemma3"):
        out.append(("gemma3", gemma, ["--speculative-method", "ngram"]))
        out.append(("gemma3", gemma, ["--speculative-method", "draft", "--speculative-model",
                                      str(convert(gemma, TMP / "gemma3-q4_0.gguf", "q4_0"))]))
    return out


def cli(model, prompt, n, extra):
    p = subprocess.run([BIN, "run", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0",
                        "--json", "-t", "2", *extra], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["tokens"], p.stderr


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def metrics(port):
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
    return out


def serve(model, port, extra, prompts, n):
    log = open(TMP / f"serve-{port}.log", "w")
    p = subprocess.Popen([BIN, "serve", "-m", model, "--port", str(port), "-t", "2",
                          "--max-model-len", "1024", "--kv-cache-memory", "256MiB", *extra],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            texts = list(ex.map(lambda q: post(port, {"prompt": q, "max_tokens": n,
                                                       "temperature": 0})["choices"][0]["text"],
                                prompts))
        return texts, metrics(port)
    finally:
        p.terminate()
        p.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--port", type=int, default=24100)
    ap.add_argument("--only", choices=["smollm2", "gemma3"])
    ap.add_argument("--cli-prompts", type=int, default=20)
    a = ap.parse_args()
    failed = False
    for name, model, extra in pairs(a.only):
        prompts = [TEMPLATES[name].format(m) for m in USER_MSGS]
        label = f"{name} {pathlib.Path(model).name} {' '.join(extra[1:2])}"
        same = 0
        proposed = accepted = 0
        for q in prompts[:a.cli_prompts]:
            off, _ = cli(model, q, a.tokens, [])
            on, err = cli(model, q, a.tokens, extra)
            same += off == on
            line = [l for l in err.splitlines() if l.startswith("speculative (")][-1]
            proposed += int(line.split(": ")[1].split(" proposed")[0])
            accepted += int(line.split(" proposed, ")[1].split(" accepted")[0])
        print(f"{label} CLI: {same}/{a.cli_prompts} identical x {a.tokens} tokens; "
              f"{accepted}/{proposed} proposals accepted", flush=True)
        failed |= same != a.cli_prompts
        off, _ = serve(model, a.port, [], prompts, a.tokens)
        on, m = serve(model, a.port + 1, extra + ["--speculative-disable-by-batch-size", "0"],
                      prompts, a.tokens)
        same = sum(x == y for x, y in zip(off, on))
        print(f"{label} server c=8: {same}/{len(prompts)} identical; acceptance rate "
              f"{m['tessera_spec_acceptance_rate']:.3f}, mean accepted length "
              f"{m['tessera_spec_mean_accepted_length']:.2f}", flush=True)
        failed |= same != len(prompts)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
