#!/usr/bin/env python3
"""Embedding speed: Tessera against sentence-transformers and llama.cpp, same machine, same
thread count, one after the other.

  sentences/s at batch 1   N sentences, one request (one encode call) each
  sentences/s at batch 64  the same sentences, 64 per request
  p50 latency              of one short query, request to answer, over Q requests

Engines:
  tessera    `tessera serve -m MODEL_DIR` (HTTP /v1/embeddings, one keep-alive connection)
  st         sentence-transformers in this process, torch on the CPU with torch.set_num_threads
  llama      llama.cpp's `llama-server --embedding -np 64` on the converted GGUF (same HTTP
             requests; 64 slots, so the inputs of one request are decoded together),
             and `llama-embedding -f FILE` (batch 64 only: see llama_embedding_eval)
The GGUF is written by `tessera convert` (F32 unless --gguf-type says otherwise). Each
engine's vectors are checked against sentence-transformers' (cosine) before timing.

Requirements: Python with sentence-transformers and torch (not needed by Tessera itself);
a llama.cpp build for the llama rows (--llama-bin; skipped when absent).
Usage:
  python bench/embed_compare.py [--model models/all-MiniLM-L6-v2] [--threads 2]
         [--llama-bin /work/ref/build/bin] [--n 256] [--queries 200] [--json out.json]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = "What is the capital of France?"


def free_port(base: int = 0) -> int:
    """A free TCP port: the first free one from `base` up when given, else any."""
    for port in range(base, base + 100) if base else ():
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_sentences(n: int) -> list[str]:
    """The first n reference inputs of at most 40 words (the corpus is varied: English,
    Chinese, code, emoji)."""
    lines = (ROOT / "tests/data/embeddings/sentences.txt").read_text(encoding="utf-8").split("\n")
    out = [s for s in lines if s and len(s.split()) <= 40]
    while len(out) < n:
        out += out
    return out[:n]


class HttpEmbedder:
    """An OpenAI-compatible /v1/embeddings server, one persistent connection."""

    def __init__(self, cmd: list[str], port: int, log: Path):
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = port
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} exited: see {log}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.close()
                raise SystemExit(f"{cmd[0]} did not become healthy: see {log}")
            time.sleep(0.2)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def embed(self, texts: list[str]) -> list[list[float]]:
        body = json.dumps({"input": texts, "encoding_format": "float"})
        self.conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit(f"HTTP {r.status}: {data[:300]!r}")
        return [d["embedding"] for d in sorted(json.loads(data)["data"], key=lambda d: d["index"])]

    def cpu(self) -> float:
        """CPU seconds (user + system, all threads) the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class StEmbedder:
    def __init__(self, model: str, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(threads)
        self.m = SentenceTransformer(model, device="cpu")

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.m.encode(texts, batch_size=len(texts), convert_to_numpy=True).tolist()

    def cpu(self) -> float:
        return time.process_time()  # this process, all threads

    def close(self) -> None:
        pass


def cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / ((sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5)


def measure(e, sentences: list[str], queries: int, repeats: int) -> dict:
    """Best of `repeats` wall-clock rates; beside them the CPU seconds per sentence the engine
    spent in its best run (user + system over all its threads: on a shared machine the wall
    clock also counts time the engine waited for a core, the CPU time does not)."""
    e.embed(sentences[:64])  # warm-up
    best1 = best64 = 0.0
    cpu1 = cpu64 = 0.0
    for _ in range(repeats):
        t, c = time.perf_counter(), e.cpu()
        for s in sentences:
            e.embed([s])
        r = len(sentences) / (time.perf_counter() - t)
        if r > best1:
            best1, cpu1 = r, (e.cpu() - c) / len(sentences)
        t, c = time.perf_counter(), e.cpu()
        for i in range(0, len(sentences), 64):
            e.embed(sentences[i:i + 64])
        r = len(sentences) / (time.perf_counter() - t)
        if r > best64:
            best64, cpu64 = r, (e.cpu() - c) / len(sentences)
    lat = []
    for _ in range(queries):
        t = time.perf_counter()
        e.embed([QUERY])
        lat.append((time.perf_counter() - t) * 1e3)
    return {"batch1_sent_per_s": best1, "batch64_sent_per_s": best64,
            "batch1_cpu_ms_per_sent": cpu1 * 1e3, "batch64_cpu_ms_per_sent": cpu64 * 1e3,
            "p50_ms": statistics.median(lat), "p90_ms": sorted(lat)[int(0.9 * len(lat))]}


def children_cpu() -> float:
    """CPU seconds of this process's ended (waited-for) children."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def llama_embedding_eval(binary: Path, gguf: Path, sentences: list[str], threads: int,
                         tmp: Path) -> dict:
    """llama-embedding as a command: this build prints no timings of its own, so the time of
    63 sentences is the wall time of a 64-line file less that of a 1-line file (the load and
    start-up cancel out), best of 3 each."""
    def run(lines: list[str]) -> tuple[float, float]:
        f = tmp / "in.txt"
        f.write_text("\n".join(lines) + "\n")
        t, c = time.perf_counter(), children_cpu()
        p = subprocess.run([str(binary), "-m", str(gguf), "-f", str(f), "-t", str(threads),
                            "-c", "8192", "-b", "8192", "-ub", "8192", "--embd-output-format",
                            "array"], capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"llama-embedding failed:\n{p.stderr[-2000:]}")
        return time.perf_counter() - t, children_cpu() - c
    r64 = min((run(sentences[:64]) for _ in range(3)), key=lambda r: r[0])
    r1 = min((run(sentences[:1]) for _ in range(3)), key=lambda r: r[0])
    return {"batch64_sent_per_s": 63 / max(r64[0] - r1[0], 1e-9),
            "batch64_cpu_ms_per_sent": (r64[1] - r1[1]) / 63 * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models/all-MiniLM-L6-v2"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tessera", default=str(ROOT / "build/tessera"))
    ap.add_argument("--llama-bin", default="/work/ref/build/bin")
    ap.add_argument("--gguf-type", default="f32")
    ap.add_argument("--n", type=int, default=256, help="sentences per throughput run")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=["tessera", "st", "llama"])
    ap.add_argument("--port-base", type=int, default=0,
                    help="take the servers' ports from this one up (default: any free port)")
    ap.add_argument("--json")
    a = ap.parse_args()
    sentences = short_sentences(a.n)
    tmp = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    gguf = tmp / f"model-{a.gguf_type}.gguf"
    subprocess.run([a.tessera, "convert", "-m", a.model, "-o", str(gguf), "--type", a.gguf_type],
                   check=True, capture_output=True)
    print(f"load average {os.getloadavg()}, {a.threads} threads, {len(sentences)} sentences",
          file=sys.stderr)
    ref = StEmbedder(a.model, a.threads)
    check = sentences[:32]
    want = ref.embed(check)
    results = {}
    engines = []
    if "tessera" in a.only:
        port = free_port(a.port_base)
        engines.append(("tessera", lambda p=port: HttpEmbedder(
            [a.tessera, "serve", "-m", a.model, "-t", str(a.threads), "--port", str(p)], p,
            tmp / "tessera.log")))
    if "st" in a.only:
        engines.append(("sentence-transformers", lambda: ref))
    llama_server = Path(a.llama_bin) / "llama-server"
    if "llama" in a.only and llama_server.exists():
        port = free_port(a.port_base + 1 if a.port_base else 0)
        engines.append(("llama-server", lambda p=port: HttpEmbedder(
            [str(llama_server), "-m", str(gguf), "--embedding", "-t", str(a.threads), "--port",
             str(p), "-c", "16384", "-b", "8192", "-ub", "8192", "-np", "64"], p,
            tmp / "llama-server.log")))
    for name, make in engines:
        e = make()
        try:
            got = e.embed(check)
            worst = min(cosine(g, w) for g, w in zip(got, want))
            r = measure(e, sentences, a.queries, a.repeats)
            r["min_cosine_vs_st"] = worst
            results[name] = r
            print(f"{name}: {json.dumps(r)}", file=sys.stderr)
        finally:
            if e is not ref:
                e.close()
    llama_embedding = Path(a.llama_bin) / "llama-embedding"
    if "llama" in a.only and llama_embedding.exists():
        results["llama-embedding"] = llama_embedding_eval(llama_embedding, gguf, sentences,
                                                          a.threads, tmp)
    print(f"\n| engine | batch 1 sent/s | batch 64 sent/s | p50 single query (ms) | "
          f"CPU ms/sent batch 1 | CPU ms/sent batch 64 | min cosine vs ST |\n"
          f"| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        if name == "llama-embedding":
            print(f"| llama-embedding (64-line file less a 1-line file) | | "
                  f"{r['batch64_sent_per_s']:.0f} | | | {r['batch64_cpu_ms_per_sent']:.2f} | |")
            continue
        print(f"| {name} | {r['batch1_sent_per_s']:.0f} | {r['batch64_sent_per_s']:.0f} | "
              f"{r['p50_ms']:.2f} | {r['batch1_cpu_ms_per_sent']:.2f} | "
              f"{r['batch64_cpu_ms_per_sent']:.2f} | {r['min_cosine_vs_st']:.6f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"threads": a.threads, "n": len(sentences),
                                            "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
