#!/usr/bin/env python3
"""Tiny random-weight GGUFs for families whose Hugging Face code is remote-only (ChatGLM2/3,
InternLM2, Baichuan 13B), with llama.cpp as the reference implementation.

Each GGUF is written directly with llama.cpp's gguf-py (the tensor names and metadata keys
llama.cpp's loader reads for that architecture), then llama.cpp's `llama-server` runs it and
returns, for each prompt, the log-probabilities of every vocabulary entry after the last
prompt token (`n_probs` = vocabulary size: the log-softmax of the raw logits). Logits are
only defined up to a constant by that, so the stored rows are centered (mean 0) and the test
centers its own logits the same way.

Outputs in --out (tests/data/archs/), per case NAME: NAME.gguf, NAME.logits.f32 (one row per
prompt: the last position), NAME.json ({"last_only": true, "centered": true, ...}).

Usage: python scripts/gen_arch_refs_llamacpp.py --llama-cpp PATH/TO/llama.cpp
       --server PATH/TO/llama-server [--out tests/data/archs]
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

N_VOCAB = 96
PROMPTS = [
    [1, 17, 42, 5, 88],
    [1, 3, 3, 60, 61, 62, 9, 90, 14, 33, 71],
    [1] + [(7 * i + 11) % N_VOCAB for i in range(23)],
]


def rand(rng, *shape_rows_cols):
    """A weight of ggml shape {cols, rows}, i.e. numpy (rows, cols), scaled by 1/sqrt(cols)."""
    a = rng.standard_normal(shape_rows_cols).astype(np.float32)
    return a / np.float32(np.sqrt(shape_rows_cols[-1]))


def norm(rng, n):
    return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)


def add_vocab(w, gguf):
    tokens = ["<unk>", "<s>", "</s>"] + [f"\u2581t{i}" for i in range(N_VOCAB - 3)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(N_VOCAB)])
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] +
                      [gguf.TokenType.NORMAL] * (N_VOCAB - 3))
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)


def write_model(gguf, path: Path, arch: str, seed: int, *, n_embd, n_head, n_head_kv, n_ff,
                n_layer, n_rot, fused_qkv=False, qkv_bias=False, fused_gate_up=False):
    rng = np.random.default_rng(seed)
    hd = n_embd // n_head
    q_dim, kv_dim = n_head * hd, n_head_kv * hd
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"tiny random {arch}")
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_rot)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    add_vocab(w, gguf)
    w.add_tensor("token_embd.weight", rng.standard_normal((N_VOCAB, n_embd)).astype(np.float32))
    w.add_tensor("output_norm.weight", norm(rng, n_embd))
    w.add_tensor("output.weight", rand(rng, N_VOCAB, n_embd))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(rng, n_embd))
        if fused_qkv:
            w.add_tensor(p + "attn_qkv.weight", rand(rng, q_dim + 2 * kv_dim, n_embd))
            if qkv_bias:
                w.add_tensor(p + "attn_qkv.bias",
                             (0.2 * rng.standard_normal(q_dim + 2 * kv_dim)).astype(np.float32))
        else:
            w.add_tensor(p + "attn_q.weight", rand(rng, q_dim, n_embd))
            w.add_tensor(p + "attn_k.weight", rand(rng, kv_dim, n_embd))
            w.add_tensor(p + "attn_v.weight", rand(rng, kv_dim, n_embd))
        w.add_tensor(p + "attn_output.weight", rand(rng, n_embd, q_dim))
        w.add_tensor(p + "ffn_norm.weight", norm(rng, n_embd))
        if fused_gate_up:
            w.add_tensor(p + "ffn_up.weight", rand(rng, 2 * n_ff, n_embd))
        else:
            w.add_tensor(p + "ffn_gate.weight", rand(rng, n_ff, n_embd))
            w.add_tensor(p + "ffn_up.weight", rand(rng, n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", rand(rng, n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CASES = {
    # ChatGLM2/3: fused QKV with bias, RoPE on half of each head, fused gate+up.
    "chatglm": dict(arch="chatglm", n_embd=16, n_head=2, n_head_kv=1, n_ff=32, n_layer=2,
                    n_rot=4, fused_qkv=True, qkv_bias=True, fused_gate_up=True),
    "internlm2": dict(arch="internlm2", n_embd=16, n_head=2, n_head_kv=1, n_ff=32, n_layer=2,
                      n_rot=8),
    # Baichuan 13B: llama.cpp picks ALiBi by the layer count (40), so this one is deep and
    # narrow.
    "baichuan13b": dict(arch="baichuan", n_embd=8, n_head=2, n_head_kv=2, n_ff=8, n_layer=40,
                        n_rot=4),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_logprobs(server: Path, model: Path, prompts) -> list[np.ndarray]:
    port = free_port()
    proc = subprocess.Popen([str(server), "-m", str(model), "--port", str(port), "-c", "256",
                             "-t", "2", "-np", "1", "--no-warmup",
                             "-ctk", "f32", "-ctv", "f32", "-fa", "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.2)
        rows = []
        for ids in prompts:
            body = json.dumps({"prompt": ids, "n_predict": 1, "n_probs": N_VOCAB,
                               "temperature": 0.0, "cache_prompt": False,
                               "post_sampling_probs": False}).encode()
            req = urllib.request.Request(url + "/completion", body,
                                         {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                out = json.load(r)
            top = out["completion_probabilities"][0]["top_logprobs"]
            if len(top) != N_VOCAB:
                raise RuntimeError(f"server returned {len(top)} log-probs, not {N_VOCAB}")
            lp = np.zeros(N_VOCAB, dtype=np.float64)
            for t in top:
                lp[t["id"]] = t["logprob"]
            rows.append((lp - lp.mean()).astype(np.float32))
        return rows
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, type=Path)
    ap.add_argument("--server", required=True, type=Path)
    ap.add_argument("--out", default=Path(__file__).resolve().parent.parent / "tests/data/archs",
                    type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(args.llama_cpp / "gguf-py"))
    import gguf  # llama.cpp's own package

    args.out.mkdir(parents=True, exist_ok=True)
    for seed, (name, spec) in enumerate(CASES.items()):
        spec = dict(spec)
        arch = spec.pop("arch")
        path = args.out / f"{name}.gguf"
        write_model(gguf, path, arch, 3000 + seed, **spec)
        rows = server_logprobs(args.server, path, PROMPTS)
        np.stack(rows).astype("<f4").tofile(args.out / f"{name}.logits.f32")
        meta = {"case": name, "arch": arch, "n_vocab": N_VOCAB, "prompts": PROMPTS,
                "last_only": True, "centered": True,
                "source": "llama.cpp llama-server (same GGUF): log-softmax of the last "
                          "position's logits over the whole vocabulary, centered"}
        (args.out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{name}: {path} ({path.stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    main()
