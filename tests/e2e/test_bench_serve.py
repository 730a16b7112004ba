"""`tessera bench serve` against a stub OpenAI server with known delays and token counts."""
import json
import time

from conftest import run_tessera
from stub_openai_server import StubServer

TTFT, ITL = 0.08, 0.02  # seconds the stub waits before the first token / between tokens


def bench(stub, tmp_path, *args, check=True, timeout=120):
    out = tmp_path / "bench.json"
    p = run_tessera("bench", "serve", "--host", "127.0.0.1", "--port", stub.port,
                    "--json", out, "--timeout", 20, *args, check=check, timeout=timeout)
    return p, (json.loads(out.read_text()) if out.exists() else None)


def test_fixed_concurrency_completions(tmp_path):
    with StubServer(ttft=TTFT, itl=ITL) as stub:
        p, r = bench(stub, tmp_path, "--num-prompts", 8, "--max-concurrency", 4,
                     "--input-len", 16, "--output-len", 6, "--seed", 3)
    assert "Serving Benchmark Result" in p.stdout
    assert r["completed"] == 8 and r["failed"] == 0 and r["rejected"] == 0
    assert r["total_output_tokens"] == 8 * 6
    assert r["total_input_tokens"] == 8 * 16
    assert r["unexpected_output_len"] == 0
    # Exactly 16 token ids, the sampling controls, and the model from /v1/models.
    assert len(stub.requests) == 8
    for body in stub.requests:
        assert len(body["prompt"]) == 16 and all(isinstance(t, int) for t in body["prompt"])
        assert body["model"] == "stub-model"
        assert body["max_tokens"] == 6 and body["min_tokens"] == 6
        assert body["ignore_eos"] is True and body["temperature"] == 0
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    # Timings follow the stub's delays (loose upper bounds: shared, busy machines).
    assert TTFT * 1e3 <= r["mean_ttft_ms"] < TTFT * 1e3 + 150
    assert TTFT * 1e3 <= r["p99_ttft_ms"] < TTFT * 1e3 + 250
    assert ITL * 1e3 * 0.9 <= r["median_itl_ms"] < ITL * 1e3 + 50
    assert ITL * 1e3 * 0.9 <= r["mean_tpot_ms"] < ITL * 1e3 + 50
    assert r["stats_ms"]["itl"]["count"] == 8 * 5
    assert r["mean_e2el_ms"] >= (TTFT + 5 * ITL) * 1e3
    # Two waves of 4 back to back.
    assert r["duration"] >= 2 * (TTFT + 5 * ITL)
    assert r["request_throughput"] > 0 and r["output_throughput"] > 0


def test_chat_without_usage_counts_chunks(tmp_path):
    with StubServer(ttft=TTFT, itl=ITL, usage=False) as stub:
        p, r = bench(stub, tmp_path, "--endpoint", "/v1/chat/completions", "--model", "m",
                     "--num-prompts", 4, "--max-concurrency", 2, "--input-len", 10,
                     "--output-len", 5)
    assert r["completed"] == 4
    assert r["total_output_tokens"] == 4 * 5  # counted from content chunks
    body = stub.requests[0]
    assert body["model"] == "m"
    assert body["messages"][0]["role"] == "user"
    assert len(body["messages"][0]["content"].split()) == 10  # random words
    # The role-only chunk comes at once; the first content only after TTFT.
    assert r["mean_ttft_ms"] >= TTFT * 1e3


def test_poisson_arrivals(tmp_path):
    with StubServer(ttft=0.01, itl=0.005) as stub:
        p, r = bench(stub, tmp_path, "--num-prompts", 10, "--request-rate", 20,
                     "--input-len", 4, "--output-len", 3, "--seed", 1)
    assert r["completed"] == 10
    sends = sorted(q["send_time_s"] for q in r["requests"])
    assert sends[-1] > 0.1  # spread out, not all at once
    assert r["config"]["request_rate"] == 20


def test_rejected_requests_are_counted(tmp_path):
    with StubServer(ttft=0.01, itl=0.005, reject_every=3) as stub:
        p, r = bench(stub, tmp_path, "--num-prompts", 9, "--max-concurrency", 3,
                     "--input-len", 4, "--output-len", 3)
    assert p.returncode == 0
    assert r["completed"] == 6 and r["failed"] == 3 and r["rejected"] == 3
    assert r["failed_by_status"] == {"429": 3}
    assert any("429" in e for e in r["error_samples"])
    assert "rejected (429/503)" in p.stdout


def test_every_request_failing_exits_nonzero(tmp_path):
    with StubServer(reject_every=1) as stub:
        p, r = bench(stub, tmp_path, "--num-prompts", 3, "--input-len", 4, "--output-len", 3,
                     check=False)
    assert p.returncode == 1
    assert "all 3 requests failed" in p.stderr
    assert r["rejected"] == 3


def test_hung_server_times_out(tmp_path):
    with StubServer(hang=True) as stub:
        t = time.monotonic()
        p = run_tessera("bench", "serve", "--port", stub.port, "--num-prompts", 2,
                        "--max-concurrency", 2, "--input-len", 4, "--output-len", 3,
                        "--timeout", 1, check=False, timeout=60)
        elapsed = time.monotonic() - t
    assert p.returncode == 1
    assert elapsed < 15
    assert "timed out" in p.stdout


def test_nothing_listening(tmp_path):
    with StubServer() as stub:
        port = stub.port  # free again once the stub is gone
    p = run_tessera("bench", "serve", "--port", port, "--num-prompts", 2, "--input-len", 4,
                    "--output-len", 2, "--timeout", 5, check=False, timeout=60)
    assert p.returncode == 1 and "requests failed" in p.stderr


def test_bad_request_rate():
    p = run_tessera("bench", "serve", "--request-rate", "fast", check=False)
    assert p.returncode == 1 and "request-rate" in p.stderr


def test_prompt_file_round_robin(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first prompt here\n\nsecond one\n")
    with StubServer(ttft=0.01, itl=0.005) as stub:
        p, r = bench(stub, tmp_path, "--prompt-file", prompts, "--num-prompts", 3,
                     "--max-concurrency", 1, "--output-len", 2, "--no-ignore-eos")
    assert r["completed"] == 3
    assert [b["prompt"] for b in stub.requests] == ["first prompt here", "second one",
                                                    "first prompt here"]
    assert all("ignore_eos" not in b and "min_tokens" not in b for b in stub.requests)
