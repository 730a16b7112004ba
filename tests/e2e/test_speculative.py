"""Speculative decoding end to end: greedy output identical with it on and off (CLI and
server at concurrency 8, n-gram and draft model), /metrics counters, start-up errors."""
import concurrent.futures
import json
import os

import pytest

from conftest import STORIES, run_tessera
from serverlib import Server

# Input-grounded prompts (the output copies from the input, so n-gram lookup proposes) and
# free-form ones.
TEXT = ("The old lighthouse stood at the edge of the cliff. Every night its keeper climbed "
        "the stairs, lit the lamp and watched the ships pass. One stormy night the lamp "
        "went out, and the keeper had to find a way to warn a ship heading for the rocks.")
PROMPTS = [
    f"<|im_start|>user\nRepeat this text word for word:\n{TEXT}<|im_end|>\n<|im_start|>assistant\n",
    f"<|im_start|>user\nSummarize this text:\n{TEXT}<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nRename the variable x to count in this code:\n"
    "def f(items):\n    x = 0\n    for i in items:\n        x += i\n    return x\n"
    "<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWrite a short poem about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "<|im_start|>user\nList three colors.<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def smollm2_f16(smollm2, tmp_path_factory):
    """SmolLM2 with its weights dequantized to F16: a target for the Q4_1 self-draft."""
    out = tmp_path_factory.mktemp("spec") / "smollm2-f16.gguf"
    run_tessera("convert", "-m", smollm2, "-o", out, "--type", "f16", "--allow-requantize",
                "--no-progress")
    return out


def run_tokens(model, prompt, n, *extra):
    p = run_tessera("run", "-m", model, "-p", prompt, "-n", n, "--temp", 0, "--json", "-t", 2,
                    *extra)
    return json.loads(p.stdout)["tokens"], p.stderr


@pytest.mark.parametrize("method", ["ngram", "draft"])
def test_cli_greedy_identical_with_speculation(smollm2, method):
    # Fixed k: these tests check verification, not when proposing pays (a self-draft never
    # does, and adaptive k would soon stop proposing).
    extra = ["--speculative-method", method, "--num-speculative-tokens", 4,
             "--no-speculative-adaptive"]
    if method == "draft":
        extra += ["--speculative-model", smollm2]  # a self-draft: every proposal accepted
    accepted = 0
    for prompt in PROMPTS[:4]:
        off, _ = run_tokens(smollm2, prompt, 48)
        on, err = run_tokens(smollm2, prompt, 48, *extra)
        assert on == off, prompt
        line = [l for l in err.splitlines() if l.startswith("speculative")][-1]
        accepted += int(line.split(" proposed, ")[1].split(" accepted")[0])
    assert accepted > 0


def test_cli_greedy_identical_with_ngram_on_gemma3(gemma3):
    """Gemma 3's sliding-window layers verify k + 1 rows per step in the key-by-key order a
    decode step uses: with n-gram lookup (proposals mostly accepted: the base model copies
    the text) the tokens are speculation off's."""
    accepted = 0
    for msg in [f"Repeat this text word for word:\n{TEXT}", f"Summarize this text:\n{TEXT}"]:
        prompt = f"<start_of_turn>user\n{msg}<end_of_turn>\n<start_of_turn>model\n"
        off, _ = run_tokens(gemma3, prompt, 64)
        on, err = run_tokens(gemma3, prompt, 64, "--speculative-method", "ngram",
                             "--num-speculative-tokens", 5, "--no-speculative-adaptive")
        assert on == off, msg
        line = [l for l in err.splitlines() if l.startswith("speculative")][-1]
        accepted += int(line.split(" proposed, ")[1].split(" accepted")[0])
    assert accepted > 0


def test_cli_greedy_identical_with_a_quantized_draft(smollm2, smollm2_f16):
    """F16 target, Q4_1 draft: proposals sometimes rejected, output still the target's."""
    for prompt in PROMPTS[3:5]:
        off, _ = run_tokens(smollm2_f16, prompt, 32)
        on, err = run_tokens(smollm2_f16, prompt, 32, "--speculative-method", "draft",
                             "--speculative-model", smollm2)
        assert on == off, prompt
        assert " accepted (" in err


def completions(server, n_tokens):
    def one(prompt):
        r = server.post("/v1/completions", {"prompt": prompt, "max_tokens": n_tokens,
                                            "temperature": 0})
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, PROMPTS))


@pytest.mark.parametrize("method", ["ngram", "draft"])
def test_server_greedy_identical_at_concurrency_8(smollm2, tmp_path, method):
    common = ["--max-model-len", 512, "--kv-cache-memory", "64MiB"]
    off = Server(smollm2, *common, log_path=tmp_path / "off.log")
    try:
        expected = completions(off, 40)
    finally:
        off.stop()
    # Speculating at any batch size, so all 8 sequences verify proposals.
    extra = ["--speculative-method", method, "--num-speculative-tokens", 3,
             "--speculative-disable-by-batch-size", 0, "--no-speculative-adaptive"]
    if method == "draft":
        extra += ["--speculative-model", smollm2]
    on = Server(smollm2, *common, *extra, log_path=tmp_path / "on.log")
    try:
        got = completions(on, 40)
        m = on.metrics()
    finally:
        on.stop()
    for prompt, a, b in zip(PROMPTS, expected, got):
        assert a == b, prompt
    assert m["tessera_spec_proposed_tokens_total"] > 0
    assert 0 < m["tessera_spec_accepted_tokens_total"] <= m["tessera_spec_proposed_tokens_total"]
    assert 0 < m["tessera_spec_acceptance_rate"] <= 1
    assert m["tessera_spec_mean_accepted_length"] > 1
    assert m["tessera_kv_blocks_used"] == 0


def test_sampled_requests_with_speculation_follow_their_settings(smollm2, tmp_path):
    """Sampling with penalties, logit bias, logprobs and a stop string through the n-gram
    path: the banned token never appears, logprobs come per token, the stop string ends."""
    s = Server(smollm2, "--max-model-len", 512, "--kv-cache-memory", "64MiB",
               "--speculative-method", "ngram", "--no-speculative-adaptive",
               log_path=tmp_path / "s.log")
    try:
        tok = s.post("/tokenize", {"content": " fox"}).json()["tokens"]
        r = s.post("/v1/completions", {"prompt": PROMPTS[5], "max_tokens": 40,
                                       "temperature": 0.7, "seed": 3, "top_p": 0.9,
                                       "frequency_penalty": 0.2, "logprobs": 2,
                                       "logit_bias": {str(tok[0]): -100}})
        assert r.status_code == 200, r.text
        c = r.json()["choices"][0]
        assert " fox" not in c["text"]
        assert len(c["logprobs"]["tokens"]) == len(c["logprobs"]["top_logprobs"])
        assert all(len(t) == 2 for t in c["logprobs"]["top_logprobs"])
        r = s.post("/v1/completions", {"prompt": PROMPTS[6], "max_tokens": 40,
                                       "temperature": 0, "stop": ["7,"]})
        assert r.status_code == 200, r.text
        assert "7," not in r.json()["choices"][0]["text"]
    finally:
        s.stop()


def test_constrained_requests_beside_speculation(smollm2, tmp_path):
    """A grammar-constrained request on a speculating server decodes one token a step under
    its mask (the choice is one of the allowed strings, the JSON parses) while an
    unconstrained request beside it still speculates, identical to speculation off."""
    s = Server(smollm2, "--max-model-len", 512, "--kv-cache-memory", "64MiB",
               "--speculative-method", "ngram", "--no-speculative-adaptive",
               log_path=tmp_path / "s.log")
    try:
        choices = ["red", "green", "blue"]
        r = s.post("/v1/completions", {"prompt": PROMPTS[7], "max_tokens": 8, "temperature": 0,
                                       "guided_choice": choices})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["text"] in choices
        r = s.post("/v1/completions", {
            "prompt": PROMPTS[0], "max_tokens": 64, "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": {
                "type": "object", "properties": {"text": {"type": "string", "maxLength": 40}},
                "required": ["text"], "additionalProperties": False}}}})
        assert r.status_code == 200, r.text
        c = r.json()["choices"][0]
        if c["finish_reason"] == "stop":
            assert set(json.loads(c["text"])) == {"text"}
        proposed = s.metrics()["tessera_spec_proposed_tokens_total"]
        got = s.post("/v1/completions", {"prompt": PROMPTS[0], "max_tokens": 48,
                                         "temperature": 0}).json()["choices"][0]["text"]
        assert s.metrics()["tessera_spec_proposed_tokens_total"] > proposed
    finally:
        s.stop()
    assert got == completion_without_speculation(smollm2, PROMPTS[0], 48, tmp_path)


def completion_without_speculation(model, prompt, n, tmp_path):
    s = Server(model, "--max-model-len", 512, "--kv-cache-memory", "64MiB",
               log_path=tmp_path / "off.log")
    try:
        return s.post("/v1/completions", {"prompt": prompt, "max_tokens": n,
                                          "temperature": 0}).json()["choices"][0]["text"]
    finally:
        s.stop()


@pytest.mark.parametrize("args,msg", [
    (["--speculative-method", "ngram", "--num-speculative-tokens", 0], "between 1 and"),
    (["--speculative-method", "ngram", "--num-speculative-tokens", -3], "between 1 and"),
    (["--speculative-method", "ngram", "--num-speculative-tokens", 1000], "between 1 and"),
    (["--speculative-method", "draft"], "needs --speculative-model"),
    (["--speculative-method", "ngram", "--ngram-min", 3, "--ngram-max", 2], "n-gram lengths"),
    (["--num-speculative-tokens", 4], "need --speculative-method"),
    (["--speculative-method", "eagle"], "speculative-method"),
    (["--speculative-method", "draft", "--speculative-model", STORIES], "vocabulary"),
    (["--speculative-method", "draft", "--speculative-model", "/nonexistent.gguf"],
     "cannot open"),
])
@pytest.mark.parametrize("cmd", ["run", "serve"])
def test_bad_speculative_settings_fail_at_start(smollm2, cmd, args, msg):
    extra = ["-p", "hi", "-n", 4] if cmd == "run" else ["--port", 24999]
    p = run_tessera(cmd, "-m", smollm2, *extra, *args, check=False, timeout=120)
    assert p.returncode != 0
    assert msg in p.stderr, p.stderr
    assert "Segmentation" not in p.stderr and "terminate called" not in p.stderr


def test_a_draft_larger_than_memory_is_refused(smollm2, tmp_path):
    huge = tmp_path / "huge.gguf"
    with open("/proc/meminfo") as m:
        avail = next(int(l.split()[1]) * 1024 for l in m if l.startswith("MemAvailable:"))
    with open(huge, "wb") as f:  # sparse: takes no disk space
        f.truncate(2 * avail + (1 << 30))
    p = run_tessera("run", "-m", smollm2, "-p", "hi", "-n", 4, "--speculative-method", "draft",
                    "--speculative-model", huge, check=False, timeout=120)
    assert p.returncode != 0
    assert "does not fit in the available memory" in p.stderr, p.stderr
