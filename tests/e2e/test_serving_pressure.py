"""Serving under pressure: prefix-cache time to first token, preemption under a KV pool far
too small for the load, and many concurrent streaming clients against a bounded queue."""
import concurrent.futures as cf
import json
import subprocess
import time

from conftest import GPL3, STORIES, run_tessera, tessera_bin
from serverlib import Server

WORDS = ["Once", "The", "Lily", "Tom", "A", "One", "Sam", "Mom", "Ben", "Sue", "The dog", "A cat",
         "The sun", "Max", "Anna", "Tim"]


def complete(server, model, prompt, max_tokens, **kw):
    r = server.client().completions.create(model=model, prompt=prompt, max_tokens=max_tokens,
                                           temperature=0, **kw)
    return r


def test_shared_1000_token_prefix_hits_the_cache_and_cuts_ttft(smollm2, tmp_path):
    ids = json.loads(run_tessera("tokenize", "-m", smollm2, "-f", GPL3, "--ids").stdout)
    prefix = ids[:1000]
    s = Server(smollm2, "--max-model-len", 1100, "--kv-cache-memory", "256MiB",
               log_path=tmp_path / "smol.log")
    try:
        model = s.client().models.list().data[0].id
        t0 = time.perf_counter()
        first = complete(s, model, prefix + ids[2000:2010], 1)
        ttft_cold = time.perf_counter() - t0
        hits_before = s.metrics()["tessera_prefix_cache_hits_total"]
        t0 = time.perf_counter()
        second = complete(s, model, prefix + ids[3000:3010], 1)
        ttft_warm = time.perf_counter() - t0
        hits = s.metrics()["tessera_prefix_cache_hits_total"] - hits_before
        assert first.usage.prompt_tokens_details.cached_tokens == 0
        assert second.usage.prompt_tokens_details.cached_tokens == 992  # 62 full blocks of 16
        assert hits == 992
        assert s.metrics()["tessera_prefix_cache_hit_rate"] > 0
        # A max_tokens=1 request's latency is its time to first token.
        assert ttft_cold >= 5 * ttft_warm, (ttft_cold, ttft_warm)
    finally:
        assert s.stop() == 0, s.logs()


def peak_rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_64_long_requests_complete_through_preemption(tmp_path):
    # 640 bytes of fp16 K/V per token (5 layers x K,V x 32 x 2 bytes): a 640 KiB pool holds
    # 1024 tokens, while 64 requests of ~8 + 200 tokens need ~13,000.
    kv_bytes = 1024 * 640
    s = Server(STORIES, "--max-model-len", 512, "--kv-cache-memory", kv_bytes,
               "--max-waiting", 256, log_path=tmp_path / "stories.log")
    try:
        model = s.client().models.list().data[0].id
        prompts = [f"{w} went to the park" for w in WORDS]
        expected = {p: complete(s, model, p, 200, extra_body={"ignore_eos": True}).choices[0].text
                    for p in prompts}  # one at a time: no pressure
        with cf.ThreadPoolExecutor(64) as ex:
            futs = [ex.submit(complete, s, model, prompts[i % 16], 200,
                              extra_body={"ignore_eos": True}) for i in range(64)]
            results = [f.result() for f in futs]
        for i, r in enumerate(results):
            assert r.choices[0].finish_reason == "length"
            assert r.usage.completion_tokens == 200
            assert r.choices[0].text == expected[prompts[i % 16]], i
        m = s.metrics()
        assert m["tessera_preemptions_total"] > 0
        assert m["tessera_kv_blocks_total"] == 64
        assert m["tessera_kv_blocks_used"] == 0
        # KV pool + a 1 MiB model + runtime: far below this bound; no growth with the load.
        assert peak_rss_bytes(s.proc.pid) < 96 << 20
    finally:
        assert s.stop() == 0, s.logs()


def test_256_concurrent_streaming_clients_complete_or_get_429(tmp_path):
    s = Server(STORIES, "--max-model-len", 256, "--kv-cache-memory", "16MiB", "--max-waiting",
               32, "--max-num-seqs", 64, log_path=tmp_path / "stories.log")
    try:
        out = tmp_path / "bench.json"
        p = subprocess.run(
            [tessera_bin(), "bench", "serve", "--port", str(s.port), "--num-prompts", "1024",
             "--max-concurrency", "256", "--input-len", "32", "--output-len", "32",
             "--token-id-max", "512", "--timeout", "120", "--json", str(out), "-q"],
            capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        r = json.loads(out.read_text())
        assert r["failed"] == r["rejected"], r["error_samples"]  # every failure is a 429
        assert r["completed"] + r["rejected"] == 1024
        assert r["completed"] > 0 and r["rejected"] > 0
        assert set(r["failed_by_status"]) <= {"429"}, r["failed_by_status"]
        assert r["unexpected_output_len"] == 0
        m = s.metrics()
        assert m["tessera_requests_running"] == 0 and m["tessera_requests_waiting"] == 0
        assert m["tessera_kv_blocks_used"] == 0
    finally:
        assert s.stop() == 0, s.logs()
