"""Embeddings on the command line: all-MiniLM-L6-v2 against sentence-transformers' float32
embeddings of the 500 reference inputs (tests/data/embeddings, made by
scripts/gen_embedding_refs.py), from the Hugging Face directory and from its F16 GGUF; a
tiny cross-encoder against transformers (tests/data/encoders); and the CLI's refusals."""
import json
import math
import struct

import pytest

from conftest import DATA, ENCODERS, run_tessera

EMB = DATA / "embeddings"
MIN_COSINE = 0.9999


def sentences():
    lines = (EMB / "sentences.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    return lines[:-1]


def reference():
    """sentence-transformers' embeddings, [500][384] (stored as float16)."""
    raw = (EMB / "minilm.st.f16").read_bytes()
    vals = struct.unpack(f"<{len(raw) // 2}e", raw)
    return [list(vals[i * 384:(i + 1) * 384]) for i in range(len(vals) // 384)]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def embed_cli(model, *args):
    p = run_tessera("embed", "-m", model, "-t", 2, *args)
    return [json.loads(line) for line in p.stdout.splitlines()]


def check_peer_equality(model, label):
    got = embed_cli(model, "-f", EMB / "sentences.txt", "--truncate")
    ref = reference()
    assert len(got) == len(ref) == 500
    cos = [cosine(g, r) for g, r in zip(got, ref)]
    worst = min(range(500), key=lambda i: cos[i])
    print(f"\n{label}: min cosine {cos[worst]:.8f} (line {worst + 1}), mean {sum(cos) / 500:.8f}")
    bad = [i + 1 for i, c in enumerate(cos) if c < MIN_COSINE]
    assert not bad, f"lines below {MIN_COSINE}: {bad[:20]}"
    for g in got:
        assert len(g) == 384 and abs(math.sqrt(sum(x * x for x in g)) - 1) < 1e-5  # Normalize


def test_minilm_hf_directory_matches_sentence_transformers(minilm):
    check_peer_equality(minilm, "HF directory")


def test_minilm_f16_gguf_matches_sentence_transformers(minilm, tmp_path):
    gguf = tmp_path / "minilm-f16.gguf"
    run_tessera("convert", "-m", minilm, "-o", gguf, "--type", "f16")
    check_peer_equality(gguf, "F16 GGUF")
    info = run_tessera("info", "-m", gguf).stdout
    assert "bert" in info and "mean pooling" in info, info


def test_cli_options(minilm, tmp_path):
    text = "The quick brown fox jumps over the lazy dog."
    full = embed_cli(minilm, "-p", text)[0]
    cut = embed_cli(minilm, "-p", text, "--dimensions", 8)[0]
    assert len(cut) == 8
    norm8 = math.sqrt(sum(x * x for x in full[:8]))
    assert all(abs(c - f / norm8) < 1e-6 for c, f in zip(cut, full))
    raw = embed_cli(minilm, "-p", text, "--no-normalize")[0]
    assert abs(math.sqrt(sum(x * x for x in raw)) - 1) > 0.01
    assert cosine(raw, full) > 0.99999
    cls = embed_cli(minilm, "-p", text, "--pooling", "cls")[0]
    assert cosine(cls, full) < 0.99
    # Several -p inputs: one line each, in order.
    two = embed_cli(minilm, "-p", text, "-p", "Hello")
    assert len(two) == 2 and two[0] == full


def test_cli_refusals(minilm, tmp_path):
    long_line = " ".join(["word"] * 400)
    f = tmp_path / "in.txt"
    f.write_text("fine\n" + long_line + "\n")
    p = run_tessera("embed", "-m", minilm, "-f", f, check=False)
    assert p.returncode == 1 and f"{f}:2:" in p.stderr and "more than the maximum of 256" in p.stderr
    f.write_text("fine\n\nalso fine\n")
    p = run_tessera("embed", "-m", minilm, "-f", f, check=False)
    assert p.returncode == 1 and f"{f}:2: the input is empty" in p.stderr, p.stderr
    p = run_tessera("embed", "-m", minilm, "-p", "x", "--dimensions", 385, check=False)
    assert p.returncode == 1 and "--dimensions" in p.stderr
    p = run_tessera("embed", "-m", minilm, "-p", "x", "--max-model-len", 513, check=False)
    assert p.returncode == 1 and "512 positions" in p.stderr
    p = run_tessera("embed", "-m", minilm, "-p", "x", "--task", "score", check=False)
    assert p.returncode == 1 and "cross-encoder" in p.stderr
    p = run_tessera("run", "-m", minilm, "-p", "hello", "-n", 2, check=False)
    assert p.returncode == 1 and "encoder" in p.stderr, p.stderr


def test_cli_cross_encoder_scores_match_transformers(tmp_path):
    ref = json.loads((ENCODERS / "refs.json").read_text())["bert-cross"]
    f = tmp_path / "pairs.tsv"
    f.write_text("".join(f"{a}\t{b}\n" for a, b in ref["pairs"]))
    got = embed_cli(ENCODERS / "bert-cross", "-f", f, "--truncate")
    assert len(got) == len(ref["logits"])
    for g, logit in zip(got, ref["logits"]):
        assert abs(g[0] - 1 / (1 + math.exp(-logit))) < 1e-4, (g, logit)
    f.write_text("no tab here\n")
    p = run_tessera("embed", "-m", ENCODERS / "bert-cross", "-f", f, check=False)
    assert p.returncode == 1 and "query<TAB>document" in p.stderr
