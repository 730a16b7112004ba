"""`tessera serve` of embedding and cross-encoder models, through the official openai client
and raw HTTP: /v1/embeddings (float, base64, dimensions, token ids, a batch of 256), /v1/rerank
and /v1/score, and every kind of bad input; a generation route on an embedding server and
the embedding routes on a generation server answer 400 saying what the model serves."""
import base64
import concurrent.futures as cf
import json
import math
import struct

import pytest

from conftest import ENCODERS, STORIES
from serverlib import Server
from test_embeddings import cosine, reference, sentences

MINILM_NAME = "all-MiniLM-L6-v2"
MAX_INPUTS = 300


@pytest.fixture(scope="module")
def emb(minilm, tmp_path_factory):
    s = Server(minilm, "--max-waiting-inputs", MAX_INPUTS,
               log_path=tmp_path_factory.mktemp("srv") / "minilm.log")
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def cross(tmp_path_factory):
    s = Server(ENCODERS / "bert-cross", log_path=tmp_path_factory.mktemp("srv") / "cross.log")
    yield s
    assert s.stop() == 0, s.logs()


def error_of(r, status, *needles):
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    for n in needles:
        assert n in err["message"], err["message"]
    return err


def test_openai_client_float_matches_sentence_transformers(emb):
    lines, ref = sentences(), reference()
    picks = [0, 5, 210, 300, 420]  # English, Chinese, code, emoji, short
    resp = emb.client().embeddings.create(model=MINILM_NAME, input=[lines[i] for i in picks],
                                          encoding_format="float")
    assert resp.model == MINILM_NAME and resp.object == "list"
    assert [d.index for d in resp.data] == list(range(len(picks)))
    for d, i in zip(resp.data, picks):
        assert len(d.embedding) == 384
        assert cosine(d.embedding, ref[i]) >= 0.9999, i
    ids = json.loads((ENCODERS.parent / "embeddings" / "minilm.ids.json").read_text())["full"]
    assert resp.usage.prompt_tokens == sum(len(ids[i]) for i in picks)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens


def test_openai_client_base64_and_default(emb):
    client = emb.client()
    text = "Sentence embeddings map text to vectors."
    floats = client.embeddings.create(model=MINILM_NAME, input=text,
                                      encoding_format="float").data[0].embedding
    b64 = client.embeddings.create(model=MINILM_NAME, input=text,
                                   encoding_format="base64").data[0].embedding
    assert isinstance(b64, str)
    raw = base64.b64decode(b64)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(floats, abs=0)
    # Without encoding_format the client asks for base64 and decodes it itself.
    default = client.embeddings.create(model=MINILM_NAME, input=text).data[0].embedding
    assert default == pytest.approx(floats, abs=1e-7)


def test_openai_client_dimensions(emb):
    client = emb.client()
    text = "Matryoshka embeddings keep their meaning when cut."
    full = client.embeddings.create(model=MINILM_NAME, input=text,
                                    encoding_format="float").data[0].embedding
    for n in (1, 64, 383, 384):
        cut = client.embeddings.create(model=MINILM_NAME, input=text, dimensions=n,
                                       encoding_format="float").data[0].embedding
        assert len(cut) == n
        norm = math.sqrt(sum(x * x for x in full[:n]))
        assert cut == pytest.approx([x / norm for x in full[:n]], abs=1e-6)
        assert math.sqrt(sum(x * x for x in cut)) == pytest.approx(1, abs=1e-5)


def test_batch_of_256_inputs(emb):
    lines, ref = sentences(), reference()
    resp = emb.client().embeddings.create(model=MINILM_NAME, input=lines[:256],
                                          encoding_format="float")
    assert len(resp.data) == 256
    assert [d.index for d in resp.data] == list(range(256))
    worst = min(cosine(d.embedding, ref[i]) for i, d in enumerate(resp.data))
    print(f"\nbatch of 256: min cosine {worst:.7f}")
    assert worst >= 0.9999


def test_token_ids_and_truncation(emb):
    lines, ref = sentences(), reference()
    ids = json.loads((ENCODERS.parent / "embeddings" / "minilm.ids.json").read_text())
    one = emb.post("/v1/embeddings", {"input": ids["full"][3]})
    assert one.status_code == 200, one.text
    assert cosine(one.json()["data"][0]["embedding"], ref[3]) >= 0.9999
    two = emb.post("/v1/embeddings", {"input": [ids["full"][3], ids["full"][4]]}).json()
    assert cosine(two["data"][1]["embedding"], ref[4]) >= 0.9999
    assert two["usage"]["prompt_tokens"] == len(ids["full"][3]) + len(ids["full"][4])
    # The long inputs: refused, unless truncation is asked for (then as sentence-transformers).
    i = int(next(iter(ids["truncated"])))
    error_of(emb.post("/v1/embeddings", {"input": lines[i]}), 400, "maximum of 256")
    for body in ({"truncate_prompt_tokens": -1}, {"truncate_prompt_tokens": 256},
                 {"truncate": True}):
        r = emb.post("/v1/embeddings", {"input": lines[i], **body})
        assert r.status_code == 200, r.text
        assert cosine(r.json()["data"][0]["embedding"], ref[i]) >= 0.9999
        assert r.json()["usage"]["prompt_tokens"] == 256
    r = emb.post("/v1/embeddings", {"input": lines[i], "truncate_prompt_tokens": 10}).json()
    assert r["usage"]["prompt_tokens"] == 10
    error_of(emb.post("/v1/embeddings", {"input": lines[i], "truncate_prompt_tokens": 257}), 400,
             "257")
    long_ids = ids["truncated"][str(i)][:-1] + [1012] * 10
    error_of(emb.post("/v1/embeddings", {"input": long_ids}), 400, "maximum of 256")


@pytest.mark.parametrize("body,needle", [
    ({}, "'input' is required"),
    ({"input": ""}, "empty string"),
    ({"input": ["fine", ""]}, "input[1] is an empty string"),
    ({"input": []}, "must not be an empty list"),
    ({"input": [[]]}, "empty list"),
    ({"input": 5}, "'input' must be"),
    ({"input": [1.5]}, "must be a string or a list of token ids"),
    ({"input": [["a"]]}, "token ids"),
    ({"input": [30522]}, "token ids in [0, 30522)"),
    ({"input": [-1]}, "token ids"),
    ({"input": {"text": "x"}}, "'input' must be"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "x", "dimensions": 0}, "1 to 384"),
    ({"input": "x", "dimensions": 385}, "1 to 384"),
    ({"input": "x", "dimensions": "8"}, "1 to 384"),
    ({"input": "x", "truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
    ({"input": "x", "truncate": "yes"}, "'truncate' must be a boolean"),
    ({"input": "x", "model": 7}, "'model' must be a string"),
])
def test_bad_embedding_requests(emb, body, needle):
    error_of(emb.post("/v1/embeddings", body), 400, needle)


def test_bad_bodies_and_limits(emb):
    error_of(emb.post("/v1/embeddings", b'{"input": "caf\xe9"}'), 400, "not valid JSON")
    error_of(emb.post("/v1/embeddings", b"not json"), 400, "not valid JSON")
    error_of(emb.post("/v1/embeddings", [1, 2]), 400, "JSON object")
    error_of(emb.post("/v1/embeddings", {"input": ["a"] * (MAX_INPUTS + 1)}), 400,
             f"at most {MAX_INPUTS}")
    r = emb.post("/v1/embeddings", {"input": ["a"] * MAX_INPUTS})
    assert r.status_code == 200 and len(r.json()["data"]) == MAX_INPUTS
    err = error_of(emb.post("/v1/embeddings", {"input": "x", "model": "gpt-4"}), 404, "gpt-4")
    assert err["code"] == "model_not_found"
    # Escaped control characters are text like any other (BERT's normalizer drops them).
    assert emb.post("/v1/embeddings", {"input": "a\u0000b\u0007c"}).status_code == 200


def test_generation_routes_refused_on_an_embedding_server(emb):
    err = error_of(emb.post("/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "hi"}]}), 400,
                   "embeddings", "does not generate")
    assert err["code"] == "model_not_supported"
    error_of(emb.post("/v1/completions", {"prompt": "hi"}), 400, "does not generate")
    models = emb.get("/v1/models").json()["data"]
    assert models[0]["id"] == MINILM_NAME and models[0]["max_model_len"] == 256
    r = emb.get("/v1/embeddings")
    assert r.status_code == 405


def test_embedding_model_reranks_by_cosine(emb):
    docs = ["Paris is the capital of France.", "Bananas are yellow.",
            "France's capital city is Paris."]
    r = emb.post("/v1/rerank", {"query": "What is the capital of France?", "documents": docs})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert {x["index"] for x in res[:2]} == {0, 2} and res[2]["index"] == 1
    assert [x["relevance_score"] for x in res] == sorted((x["relevance_score"] for x in res),
                                                         reverse=True)
    s = emb.post("/v1/score", {"text_1": "What is the capital of France?", "text_2": docs}).json()
    assert [d["score"] for d in s["data"]] == pytest.approx(
        [next(x["relevance_score"] for x in res if x["index"] == i) for i in range(3)], abs=1e-6)


def test_concurrent_requests_agree(emb):
    lines = sentences()[:64]
    want = emb.post("/v1/embeddings", {"input": lines}).json()["data"]

    def one(i):
        r = emb.post("/v1/embeddings", {"input": [lines[i], lines[(i * 7) % 64]]})
        assert r.status_code == 200, r.text
        return i, r.json()["data"]

    with cf.ThreadPoolExecutor(8) as ex:
        for i, data in ex.map(one, range(64)):
            assert data[0]["embedding"] == want[i]["embedding"]  # batch mates change nothing
            assert data[1]["embedding"] == want[(i * 7) % 64]["embedding"]


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_cross_encoder_score_and_rerank_match_transformers(cross):
    ref = json.loads((ENCODERS / "refs.json").read_text())["bert-cross"]
    a = [p[0] for p in ref["pairs"]]
    b = [p[1] for p in ref["pairs"]]
    r = cross.post("/v1/score", {"text_1": a, "text_2": b, "truncate": True})
    assert r.status_code == 200, r.text
    got = [d["score"] for d in r.json()["data"]]
    for g, logit in zip(got, ref["logits"]):
        assert abs(g - sigmoid(logit)) < 1e-4
    assert r.json()["usage"]["prompt_tokens"] == sum(len(x) for x in ref["ids"])
    # Pairs 0 and 1 share their query: a rerank of their documents.
    q = ref["pairs"][0][0]
    r = cross.post("/v1/rerank", {"query": q, "documents": [{"text": b[0]}, b[1]], "top_n": 1,
                                  "return_documents": False})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    best = 0 if ref["logits"][0] > ref["logits"][1] else 1
    assert res == [{"index": best, "relevance_score": pytest.approx(
        sigmoid(ref["logits"][best]), abs=1e-4)}]
    # Too long without truncation: refused, naming the pair.
    error_of(cross.post("/v1/score", {"text_1": a[7], "text_2": b[7]}), 400, "maximum of 64")


@pytest.mark.parametrize("path,body,needle", [
    ("/v1/rerank", {"documents": ["a"]}, "'query' is required"),
    ("/v1/rerank", {"query": "", "documents": ["a"]}, "empty string"),
    ("/v1/rerank", {"query": "q", "documents": []}, "non-empty list"),
    ("/v1/rerank", {"query": "q", "documents": ["a", 3]}, "documents[1]"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": -1}, "top_n"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "return_documents": 1}, "return_documents"),
    ("/v1/score", {"text_1": ["a", "b"], "text_2": ["a", "b", "c"]}, "same length"),
    ("/v1/score", {"text_1": [], "text_2": "a"}, "empty list"),
    ("/v1/score", {"text_2": "a"}, "'text_1' is required"),
    ("/v1/embeddings", {"input": "a"}, "cross-encoder"),
])
def test_bad_scoring_requests(cross, path, body, needle):
    error_of(cross.post(path, body), 400, needle)


def test_embedding_routes_refused_on_a_generation_server(tmp_path):
    s = Server(STORIES, "--max-model-len", 128, "--kv-cache-memory", "8MiB",
               log_path=tmp_path / "stories.log")
    try:
        for path, body in (("/v1/embeddings", {"input": "hi"}),
                           ("/v1/rerank", {"query": "q", "documents": ["d"]}),
                           ("/v1/score", {"text_1": "a", "text_2": "b"})):
            err = error_of(s.post(path, body), 400, "text generation", "--task embed")
            assert err["code"] == "model_not_supported"
    finally:
        assert s.stop() == 0, s.logs()


def test_decoder_served_as_embedder(tmp_path):
    # stories260K (a Llama decoder) under --task embed: its final hidden states, last-token
    # pooled, the same as the CLI gives.
    from conftest import run_tessera
    want = json.loads(run_tessera("embed", "-m", STORIES, "--task", "embed", "-t", 2, "-p",
                                  "Once upon a time").stdout)
    s = Server(STORIES, "--task", "embed", log_path=tmp_path / "stories-embed.log")
    try:
        r = s.post("/v1/embeddings", {"input": ["Once upon a time", "Lily"]})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert len(data[0]["embedding"]) == 64
        assert data[0]["embedding"] == pytest.approx(want, abs=1e-6)
        error_of(s.post("/v1/completions", {"prompt": "Once"}), 400, "does not generate")
        error_of(s.post("/v1/rerank", {"query": "q", "documents": ["d"], "truncate": 3}), 400,
                 "'truncate' must be a boolean")
    finally:
        assert s.stop() == 0, s.logs()
