"""LLM.embed: all-MiniLM-L6-v2 against sentence-transformers' embeddings (the reference of
tests/e2e/test_embeddings.py), a decoder as an embedder, and the refusals."""
import math
import struct

import pytest
from conftest import ROOT
from tessera import LLM, EmbeddingRequestOutput, SamplingParams

EMB = ROOT / "tests" / "data" / "embeddings"
MINILM = ROOT / "models" / "all-MiniLM-L6-v2"
MIN_COSINE = 0.9999


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(scope="module")
def minilm():
    if not (MINILM / "model.safetensors").exists():
        pytest.fail(f"{MINILM} is missing: run `make model`")
    return LLM(MINILM, threads=2)


def test_minilm_matches_sentence_transformers(minilm):
    lines = (EMB / "sentences.txt").read_text(encoding="utf-8").split("\n")[:-1]
    raw = (EMB / "minilm.st.f16").read_bytes()
    vals = struct.unpack(f"<{len(raw) // 2}e", raw)
    n = 100
    outs = minilm.embed(lines[:n], truncate=True)
    assert minilm.task == "embed" and len(outs) == n
    for i, out in enumerate(outs):
        assert isinstance(out, EmbeddingRequestOutput) and out.prompt == lines[i]
        vec = out.outputs.embedding
        assert len(vec) == 384
        assert cosine(vec, vals[i * 384:(i + 1) * 384]) >= MIN_COSINE, i
        assert abs(math.sqrt(sum(x * x for x in vec)) - 1) < 1e-5
    # Token-id inputs give the same vectors as their text.
    ids = outs[0].prompt_token_ids
    assert ids[0] == minilm.tokenizer.encode("")[0]  # [CLS]
    again = minilm.embed([ids])[0]
    assert again.prompt is None and again.outputs.embedding == outs[0].outputs.embedding


def test_dimensions_truncation_and_refusals(minilm):
    full = minilm.embed("A man is eating food.")[0].outputs.embedding
    cut = minilm.embed("A man is eating food.", dimensions=8)[0].outputs.embedding
    norm8 = math.sqrt(sum(x * x for x in full[:8]))
    assert cut == pytest.approx([x / norm8 for x in full[:8]], abs=1e-6)
    long_text = "word " * 600
    with pytest.raises(ValueError, match="prompt 1: .*maximum"):
        minilm.embed(["short", long_text])
    assert len(minilm.embed(long_text, truncate=True)[0].prompt_token_ids) == minilm.max_model_len
    with pytest.raises(ValueError, match="prompt 0: .*empty"):
        minilm.embed("")
    with pytest.raises(ValueError, match="dimensions"):
        minilm.embed("hi", dimensions=1000)
    with pytest.raises(ValueError, match="prompt 0: token id"):
        minilm.embed([[101, 10 ** 6]])
    with pytest.raises(ValueError, match="LLM.embed"):
        minilm.generate("hi", SamplingParams(max_tokens=2))
    assert minilm.embed([]) == []


def test_a_decoder_embeds_with_task_embed(smollm2_path, llm):
    with pytest.raises(ValueError, match="task='embed'"):
        llm.embed("hi")
    dec = LLM(smollm2_path, task="embed", threads=2, max_model_len=256)
    a, b, c = (o.outputs.embedding for o in dec.embed(
        ["The cat sat on the mat.", "A cat was sitting on the mat.", "Stock prices fell."]))
    assert len(a) == 576 and cosine(a, b) > cosine(a, c)
    with pytest.raises(ValueError, match="task"):
        LLM(smollm2_path, task="score")
