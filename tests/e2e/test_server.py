"""`tessera serve` driven through the official openai client and raw HTTP.

Servers listen on 127.0.0.1 on a free port. stories260K (no chat template, fast) covers
completions, errors and batching; SmolLM2 covers chat and requests long enough to
interrupt (client disconnects, SIGTERM drain)."""
import concurrent.futures as cf
import http.client
import json
import signal
import socket
import subprocess
import threading
import time

import openai
import pytest

from conftest import REF, STORIES, run_tessera, tessera_bin
from serverlib import Server, free_port, request, smollm2_server

STORIES_NAME = "stories260K-f32"
REF_TEXT = (REF / "stories260K_llamacpp_once_upon_a_time_n200_greedy.txt").read_text()
PROMPT = "Once upon a time"
# The reference is llama.cpp's greedy continuation of PROMPT (with the SPM space prefix).
REF_CONTINUATION = REF_TEXT[len(" " + PROMPT):]


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    s = Server(STORIES, "--max-model-len", 256, "--kv-cache-memory", "32MiB",
               log_path=tmp_path_factory.mktemp("srv") / "stories.log")
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def smol(smollm2, tmp_path_factory):
    s = smollm2_server(smollm2, tmp_path_factory.mktemp("srv") / "smol.log")
    yield s
    assert s.stop() == 0, s.logs()


def error_of(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


# ---------------------------------------------------------------------------------------
# Completions


@pytest.mark.checked
def test_models_and_health(stories):
    models = stories.client().models.list()
    assert [m.id for m in models.data] == [STORIES_NAME]
    assert stories.get("/health").json() == {"status": "ok"}


@pytest.mark.checked
def test_greedy_completion_matches_llamacpp(stories):
    r = stories.client().completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=60,
                                            temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "length"
    assert len(c.text) > 100 and REF_CONTINUATION.startswith(c.text), c.text
    n_prompt = len(stories.post("/tokenize", {"content": PROMPT}).json()["tokens"])
    assert r.usage.prompt_tokens == n_prompt
    assert r.usage.completion_tokens == 60
    assert r.usage.total_tokens == n_prompt + 60
    assert r.usage.prompt_tokens_details.cached_tokens >= 0


@pytest.mark.checked
def test_streamed_completion_equals_unstreamed(stories):
    cl = stories.client()
    full = cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=50,
                                 temperature=0)
    chunks = list(cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=50,
                                        temperature=0, stream=True,
                                        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 50
    assert all(c.usage is None for c in chunks[:-1])


def test_prompt_forms(stories):
    ids = stories.post("/tokenize", {"content": PROMPT}).json()["tokens"]
    assert stories.post("/detokenize", {"tokens": ids}).json()["content"].strip() == PROMPT
    cl = stories.client()
    by_text = cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=12,
                                    temperature=0).choices[0].text
    by_ids = cl.completions.create(model=STORIES_NAME, prompt=ids, max_tokens=12,
                                   temperature=0).choices[0].text
    assert by_ids == by_text
    r = cl.completions.create(model=STORIES_NAME, prompt=[PROMPT, "The cat"], max_tokens=12,
                              temperature=0)
    assert [c.index for c in r.choices] == [0, 1] and r.choices[0].text == by_text
    r2 = cl.completions.create(model=STORIES_NAME, prompt=[ids, ids], max_tokens=12,
                               temperature=0)
    assert [c.text for c in r2.choices] == [by_text, by_text]
    assert r2.usage.prompt_tokens == 2 * len(ids)


@pytest.mark.checked
def test_n_choices_and_prefix_cache(stories):
    cl = stories.client()
    prompt = "Lily and Ben went to the park to play with a red ball. " * 3
    r = cl.completions.create(model=STORIES_NAME, prompt=prompt, max_tokens=20, n=3,
                              temperature=1.0, seed=7)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert r.usage.completion_tokens == 60
    assert len({c.text for c in r.choices}) > 1  # three samples, not one copied
    # The same prompt again: its full blocks come from the prefix cache.
    again = cl.completions.create(model=STORIES_NAME, prompt=prompt, max_tokens=4)
    assert again.usage.prompt_tokens_details.cached_tokens >= 16
    m = stories.metrics()
    assert m["tessera_prefix_cache_hits_total"] > 0
    assert 0 < m["tessera_prefix_cache_hit_rate"] <= 1


@pytest.mark.checked
def test_stop_strings(stories):
    cl = stories.client()
    stop = "named Lily"  # several tokens in the reference continuation
    want = REF_CONTINUATION[:REF_CONTINUATION.index(stop)]
    r = cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=60, temperature=0,
                              stop=["never appears", stop])
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 60
    chunks = list(cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=60,
                                        temperature=0, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == want
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stop_token_ids(stories):
    cl = stories.client()
    full = json.loads(run_tessera("run", "-m", STORIES, "-p", PROMPT, "-n", 12, "--temp", 0,
                                  "--json").stdout)
    ids = full["tokens"]
    k = next(i for i in range(3, 12) if ids[i] not in ids[:i])
    r = cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=12, temperature=0,
                              extra_body={"stop_token_ids": [ids[k]]})
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == k
    assert full["text"].startswith(r.choices[0].text) and r.choices[0].text
    with pytest.raises(openai.BadRequestError) as e:
        cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=4,
                              extra_body={"stop_token_ids": [10 ** 6]})
    assert e.value.body["param"] == "stop_token_ids"


@pytest.mark.checked
def test_completion_logprobs(stories):
    r = stories.client().completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=10,
                                            temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 10
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(10)]
    for tok, chosen, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and chosen <= 0
        assert abs(max(top.values()) - chosen) < 1e-4  # greedy picks the most likely
        assert tok in top


def test_seed_reproducibility(stories):
    cl = stories.client()

    def sample(seed):
        return cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=30,
                                     temperature=1.0, seed=seed).choices[0].text

    a, b = sample(1234), sample(1234)
    assert a == b
    assert len({a, sample(1), sample(2)}) > 1


def check_batch_invariance(server, model, max_tokens):
    """32 concurrent greedy requests return what each returns alone, token for token."""
    cl = server.client()
    starts = ["Once upon a time", "The little dog", "Lily wanted", "Tom and Sue", "One day",
              "The sun was", "A big bird", "Mom said"]
    prompts = [f"{starts[i % 8]}{' and' * (i // 8)}" for i in range(32)]

    def run(p):
        r = cl.completions.create(model=model, prompt=p, max_tokens=max_tokens, temperature=0,
                                  logprobs=0)
        return r.choices[0].logprobs.tokens

    alone = [run(p) for p in prompts]
    with cf.ThreadPoolExecutor(32) as ex:
        together = list(ex.map(run, prompts))
    for i, (a, b) in enumerate(zip(alone, together)):
        first = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), None)
        assert a == b, f"prompt {i} {prompts[i]!r}: first differing token at position {first}"


@pytest.mark.checked
def test_batch_invariance(stories):
    check_batch_invariance(stories, STORIES_NAME, 48)


# ---------------------------------------------------------------------------------------
# Errors


@pytest.mark.checked
def test_bad_json_and_parameters(stories):
    err = error_of(stories.post("/v1/completions", b"{not json",
                                {"Content-Type": "application/json"}), 400)
    assert err["type"] == "invalid_request_error"
    cl = stories.client()
    bad = [dict(temperature="hot"), dict(temperature=3), dict(n=0), dict(max_tokens=-1),
           dict(top_p=0), dict(logprobs=50), dict(stop=[1, 2]), dict(logit_bias={"x": 1}),
           dict(prompt=[[]]), dict(prompt=[10 ** 6]), dict(prompt={"a": 1})]
    for kw in bad:
        kw = {"model": STORIES_NAME, "prompt": PROMPT, "max_tokens": 4, **kw}
        with pytest.raises(openai.BadRequestError) as e:
            cl.completions.create(**kw)
        assert e.value.status_code == 400, kw
    with pytest.raises(openai.BadRequestError) as e:
        cl.chat.completions.create(model=STORIES_NAME,
                                   messages=[{"role": "wizard", "content": "hi"}])
    assert "wizard" in e.value.body["message"]


def test_unknown_route_model_and_method(stories):
    error_of(stories.get("/v1/nothing"), 404)
    error_of(stories.get("/v1/completions"), 405)
    with pytest.raises(openai.NotFoundError) as e:
        stories.client().completions.create(model="gpt-4", prompt=PROMPT, max_tokens=2)
    assert e.value.body["code"] == "model_not_found"


@pytest.mark.checked
def test_too_long_for_the_context(stories):
    cl = stories.client()
    with pytest.raises(openai.BadRequestError) as e:
        cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=255)
    assert "256" in e.value.body["message"] and e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        cl.completions.create(model=STORIES_NAME, prompt=list(range(3, 300)), max_tokens=1)
    assert "context length" in e.value.body["message"]


def test_chat_without_template_is_refused(stories):
    with pytest.raises(openai.BadRequestError) as e:
        stories.client().chat.completions.create(
            model=STORIES_NAME, messages=[{"role": "user", "content": "hi"}])
    assert "chat template" in e.value.body["message"]


def test_auth_body_limit_and_busy(tmp_path):
    s = Server(STORIES, "--api-key", "sekrit", "--max-body-bytes", 65536, "--max-waiting", 1,
               "--max-num-seqs", 1, "--max-model-len", 256, "--kv-cache-memory", "16MiB",
               log_path=tmp_path / "tight.log")
    try:
        error_of(s.post("/v1/completions", {"prompt": PROMPT}), 401)
        error_of(s.post("/v1/completions", {"prompt": PROMPT},
                        headers={"Authorization": "Bearer wrong"}), 401)
        with pytest.raises(openai.AuthenticationError):
            s.client("wrong").models.list()
        assert s.get("/health").status_code == 200  # probes stay open
        cl = s.client("sekrit")
        assert cl.completions.create(model=STORIES_NAME, prompt=PROMPT,
                                     max_tokens=2).usage.completion_tokens == 2

        err = error_of(s.post("/v1/completions", {"prompt": "x" * 100_000},
                              headers={"Authorization": "Bearer sekrit"}), 413)
        assert "65536" in err["message"]

        # One running, one waiting: the rest of a burst is refused with 429.
        def one(_):
            try:
                cl.completions.create(model=STORIES_NAME, prompt=PROMPT, max_tokens=200,
                                      extra_body={"ignore_eos": True})
                return 200
            except openai.RateLimitError as e:
                assert e.body["type"] == "rate_limit_error"
                return 429

        with cf.ThreadPoolExecutor(12) as ex:
            codes = list(ex.map(one, range(12)))
        assert codes.count(200) >= 1 and codes.count(429) >= 1, codes
    finally:
        assert s.stop() == 0, s.logs()


# ---------------------------------------------------------------------------------------
# Chat (SmolLM2)

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_prompt_and_usage(smol):
    cl = smol.client()
    r = cl.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", messages=QUESTION,
                                   max_tokens=12, temperature=0)
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    # The template's text, tokenized with special tokens parsed and no extra BOS.
    rendered = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
                "<|im_end|>\n<|im_start|>assistant\n")
    ids = smol.post("/tokenize", {"content": rendered, "add_special": False}).json()["tokens"]
    assert r.usage.prompt_tokens == len(ids)
    assert r.usage.completion_tokens <= 12

    chunks = list(cl.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1",
                                             messages=QUESTION, max_tokens=12, temperature=0,
                                             stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == r.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason


def test_chat_logprobs_n_and_stop(smol):
    cl = smol.client()
    r = cl.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", messages=QUESTION,
                                   max_tokens=8, temperature=0, logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for e in content:
        assert len(e.top_logprobs) == 2 and e.logprob <= 0
        if all(b < 128 for b in e.bytes):
            assert bytes(e.bytes).decode() == e.token
    r = cl.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", messages=QUESTION,
                                   max_tokens=8, n=2, temperature=0.8, seed=3)
    assert sorted(c.index for c in r.choices) == [0, 1]
    greedy = cl.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", messages=QUESTION,
                                        max_tokens=16, temperature=0).choices[0].message.content
    words = greedy.split()
    assert len(words) >= 3
    stop = " " + words[2]
    r = cl.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", messages=QUESTION,
                                   max_tokens=16, temperature=0, stop=stop)
    assert r.choices[0].message.content == greedy[:greedy.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_batch_invariance_smollm2(smol):
    check_batch_invariance(smol, "SmolLM2-135M-Instruct-Q4_1", 16)


def test_client_disconnect_frees_blocks(smol):
    before = smol.metrics()["tessera_generation_tokens_total"]
    aborted = smol.metrics()["tessera_requests_aborted_by_client_total"]
    n_max = 600
    conn = http.client.HTTPConnection("127.0.0.1", smol.port, timeout=60)
    conn.request("POST", "/v1/completions", headers={"Content-Type": "application/json"},
                 body=json.dumps({"prompt": PROMPT, "max_tokens": n_max, "ignore_eos": True,
                                  "stream": True}))
    r = conn.getresponse()
    assert r.status == 200
    got = 0
    while got < 3:
        line = r.fp.readline()
        assert line, "the stream ended early"
        got += line.startswith(b"data: ")
    assert smol.metrics()["tessera_kv_blocks_used"] > 0
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    # Closing the connection aborted the request: its blocks return to the pool long
    # before it could have generated n_max tokens.
    smol.wait_metric("tessera_kv_blocks_used", lambda v: v == 0)
    smol.wait_metric("tessera_requests_running", lambda v: v == 0)
    smol.wait_metric("tessera_requests_aborted_by_client_total", lambda v: v == aborted + 1)
    time.sleep(0.5)
    assert smol.metrics()["tessera_generation_tokens_total"] - before < n_max / 2


def test_client_disconnect_unstreamed_frees_blocks(smol):
    before = smol.metrics()["tessera_generation_tokens_total"]
    aborted = smol.metrics()["tessera_requests_aborted_by_client_total"]
    n_max = 600
    conn = http.client.HTTPConnection("127.0.0.1", smol.port, timeout=60)
    conn.request("POST", "/v1/completions", headers={"Content-Type": "application/json"},
                 body=json.dumps({"prompt": PROMPT, "max_tokens": n_max, "ignore_eos": True}))
    smol.wait_metric("tessera_kv_blocks_used", lambda v: v > 0)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    smol.wait_metric("tessera_kv_blocks_used", lambda v: v == 0)
    smol.wait_metric("tessera_requests_running", lambda v: v == 0)
    smol.wait_metric("tessera_requests_aborted_by_client_total", lambda v: v == aborted + 1)
    time.sleep(0.5)
    assert smol.metrics()["tessera_generation_tokens_total"] - before < n_max / 2


def test_metrics_format(smol):
    text = smol.get("/metrics").text
    for name in ["tessera_requests_running", "tessera_requests_waiting", "tessera_kv_blocks_used",
                 "tessera_kv_blocks_total", "tessera_prefix_cache_hit_rate",
                 "tessera_prompt_tokens_total", "tessera_generation_tokens_total",
                 "tessera_requests_aborted_by_client_total"]:
        assert f"# TYPE {name} " in text, name
    for h in ["tessera_time_to_first_token_seconds", "tessera_inter_token_latency_seconds"]:
        assert f"# TYPE {h} histogram" in text
        assert f'{h}_bucket{{le="+Inf"}}' in text
    m = smol.metrics()
    assert m["tessera_time_to_first_token_seconds_count"] > 0
    assert m["tessera_inter_token_latency_seconds_count"] > 0
    assert m["tessera_kv_blocks_total"] > 0


def test_sigterm_drains_running_requests(smollm2, tmp_path):
    s = Server(smollm2, "--max-model-len", 512, "--kv-cache-memory", "64MiB",
               "--shutdown-timeout", 60, log_path=tmp_path / "drain.log")
    result = {}
    started = threading.Event()

    def long_request():
        chunks = []
        for c in s.client().completions.create(model="SmolLM2-135M-Instruct-Q4_1",
                                               prompt=PROMPT, max_tokens=150, stream=True,
                                               extra_body={"ignore_eos": True}):
            chunks.append(c)
            started.set()
        result["chunks"] = chunks

    t = threading.Thread(target=long_request)
    t.start()
    assert started.wait(60)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    # New work is refused while the running request finishes.
    error_of(s.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 2}), 503)
    assert s.get("/health").status_code == 503
    t.join(60)
    assert not t.is_alive()
    chunks = result["chunks"]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert sum(1 for c in chunks if c.choices[0].text) > 100
    assert s.proc.wait(60) == 0
    assert "SIGTERM" in s.logs()
    s.stop()
