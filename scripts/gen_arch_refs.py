#!/usr/bin/env python3
"""Tiny random-weight models per architecture, with reference logits from transformers.

For each case: build a tiny model with Hugging Face transformers (random weights, seeded),
save it as a Hugging Face directory (BF16 safetensors, the weights rounded to bfloat16
before the reference runs), convert it to GGUF (f32) with llama.cpp's
convert_hf_to_gguf.py, and record transformers' float32 logits for a few token-id prompts.

Outputs, per case NAME, in --out (tests/data/archs/):
  NAME.gguf         the converted model
  NAME.logits.f32   little-endian float32 logits, [sum of prompt lengths, n_vocab], the
                    prompts one after another, every position
  NAME.json         {"arch", "n_vocab", "prompts": [[ids]], "source": ...}
  hf/NAME/          the Hugging Face directory itself (config.json, model.safetensors and a
                    minimal SentencePiece-style tokenizer.json), for the safetensors loader;
                    same weights, so the same reference logits apply

The models need no real tokenizer: prompts are token ids. The converter's vocabulary step
is replaced by a synthetic SentencePiece-style vocabulary of N_VOCAB tokens, so every file
loads with the same tokenizer code.

Requirements (outside the repo): pip install torch transformers safetensors numpy
Usage: python scripts/gen_arch_refs.py --llama-cpp PATH/TO/llama.cpp [--out tests/data/archs]
       [--only NAME ...]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

N_VOCAB = 96
PROMPTS = [
    [1, 17, 42, 5, 88],
    [1, 3, 3, 60, 61, 62, 9, 90, 14, 33, 71],
    [1] + [(7 * i + 11) % N_VOCAB for i in range(23)],
]

COMMON = dict(vocab_size=N_VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
              rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
              pad_token_id=0)


def cases():
    T = transformers
    c = {}
    c["llama"] = (T.LlamaConfig, T.LlamaForCausalLM, dict(COMMON), {})
    # llama.cpp's converter drops Mistral's sliding_window; it is added back so the file
    # exercises the window (the prompts are longer than 4).
    c["mistral"] = (T.MistralConfig, T.MistralForCausalLM, dict(COMMON, sliding_window=4),
                    {"sliding_window": 4})
    c["mixtral"] = (T.MixtralConfig, T.MixtralForCausalLM,
                    dict(COMMON, intermediate_size=24, num_local_experts=4, num_experts_per_tok=2,
                         sliding_window=None, router_jitter_noise=0.0), {})
    c["qwen3"] = (T.Qwen3Config, T.Qwen3ForCausalLM, dict(COMMON, head_dim=8, tie_word_embeddings=True), {})
    c["qwen2moe"] = (T.Qwen2MoeConfig, T.Qwen2MoeForCausalLM,
                     dict(COMMON, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                          shared_expert_intermediate_size=24, norm_topk_prob=False,
                          decoder_sparse_step=1, mlp_only_layers=[], use_sliding_window=False), {})
    c["qwen3moe"] = (T.Qwen3MoeConfig, T.Qwen3MoeForCausalLM,
                     dict(COMMON, head_dim=8, num_experts=4, num_experts_per_tok=2,
                          moe_intermediate_size=16, norm_topk_prob=True, decoder_sparse_step=1,
                          mlp_only_layers=[]), {})
    # Layer 0 local (window 4, RoPE base 10000), layer 1 global (base 1e6). The converter
    # assumes Gemma 3's 5:1 pattern; the per-layer pattern is written explicitly.
    c["gemma3"] = (T.Gemma3TextConfig, T.Gemma3ForCausalLM,
                   dict(COMMON, head_dim=8, query_pre_attn_scalar=8, sliding_window=4,
                        layer_types=["sliding_attention", "full_attention"], rope_theta=1e6,
                        rope_local_base_freq=10000.0, final_logit_softcapping=5.0,
                        attn_logit_softcapping=None, hidden_activation="gelu_pytorch_tanh",
                        rms_norm_eps=1e-6, tie_word_embeddings=True),
                   {"sliding_window_pattern": [True, False]})
    # LongRoPE: max 256 positions, trained at 64; the short factors apply to these prompts.
    g = torch.Generator().manual_seed(7)
    short = (1.0 + 3.0 * torch.rand(4, generator=g)).tolist()
    long = (1.0 + 3.0 * torch.rand(4, generator=g)).tolist()
    c["phi3"] = (T.Phi3Config, T.Phi3ForCausalLM,
                 dict(COMMON, max_position_embeddings=256, original_max_position_embeddings=64,
                      rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long},
                      sliding_window=None),
                 {})
    c["glm4"] = (T.Glm4Config, T.Glm4ForCausalLM,
                 dict(COMMON, head_dim=8, partial_rotary_factor=0.5, attention_bias=True), {})
    return c


def randomize(model: torch.nn.Module, seed: int, gemma: bool) -> None:
    """Weights large enough that every part of the network moves the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            elif "norm" in name or "layernorm" in name:
                # Gemma's norms scale by (1 + w).
                base = 0.0 if gemma else 1.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
            else:  # biases, the shared-expert gate
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        emb = model.get_input_embeddings().weight
        emb.copy_(torch.randn(emb.shape, generator=g))
        # Every weight representable in bfloat16, as published checkpoints are: the
        # directory is saved in BF16 and a conversion to F16 is exact (up to f16
        # subnormals), so the comparison after conversion measures the converter, not the
        # rounding of random float32 weights.
        for p in model.parameters():
            p.copy_(p.bfloat16().float())


def synthetic_vocab(self) -> None:
    """Replaces the converter's vocabulary step: N_VOCAB SentencePiece-style tokens."""
    import gguf
    w = self.gguf_writer
    tokens = ["<unk>", "<s>", "</s>"] + [f"\u2581t{i}" for i in range(N_VOCAB - 3)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + \
        [gguf.TokenType.NORMAL] * (N_VOCAB - 3)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(N_VOCAB)])
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)


def hf_tokenizer() -> dict:
    """A tokenizer.json of N_VOCAB tokens, SentencePiece-style (byte fallback, no merges)."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"\u2581t{i}": i + 3 for i in range(N_VOCAB - 3)})
    added = [{"id": i, "content": t, "special": True} for t, i in list(vocab.items())[:3]]
    return {"version": "1.0", "added_tokens": added,
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "\u2581"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
            "pre_tokenizer": None, "post_processor": None, "decoder": None,
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": []}}


def keep_hf_dir(hf_dir: Path, out: Path) -> None:
    """Copies config.json + model.safetensors and writes the tokenizer files to `out`."""
    import shutil
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(hf_dir / f, out / f)
    (out / "tokenizer.json").write_text(json.dumps(hf_tokenizer(), indent=1) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": False,
         "add_eos_token": False}, indent=1) + "\n")


def convert(llama_cpp: Path, hf_dir: Path, out: Path, extra: dict) -> None:
    """Runs llama.cpp's converter with the synthetic vocabulary and the `extra` keys."""
    sys.path.insert(0, str(llama_cpp))
    import convert_hf_to_gguf as conv  # llama.cpp's converter, used as a tool
    from conversion import get_model_class

    cls = get_model_class(json.loads((hf_dir / "config.json").read_text())["architectures"][0])
    saved = {k: cls.__dict__[k] for k in ("set_vocab", "set_gguf_parameters") if k in cls.__dict__}
    base_params = cls.set_gguf_parameters

    def set_gguf_parameters(self):
        base_params(self)
        if "sliding_window" in extra:
            self.gguf_writer.add_sliding_window(extra["sliding_window"])
        if "sliding_window_pattern" in extra:
            self.gguf_writer.add_sliding_window_pattern(extra["sliding_window_pattern"])

    cls.set_vocab = synthetic_vocab
    cls.set_gguf_parameters = set_gguf_parameters
    argv = sys.argv
    try:
        sys.argv = ["convert_hf_to_gguf.py", str(hf_dir), "--outfile", str(out), "--outtype", "f32"]
        conv.main()
    finally:
        sys.argv = argv
        for k in ("set_vocab", "set_gguf_parameters"):
            if k in saved:
                setattr(cls, k, saved[k])
            else:
                delattr(cls, k)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, type=Path)
    ap.add_argument("--out", default=Path(__file__).resolve().parent.parent / "tests/data/archs",
                    type=Path)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(args.llama_cpp / "gguf-py"))  # llama.cpp's own gguf package

    for seed, (name, (cfg_cls, model_cls, kw, extra)) in enumerate(cases().items()):
        if args.only and name not in args.only:
            continue
        torch.manual_seed(1000 + seed)
        cfg = cfg_cls(**kw)
        cfg._attn_implementation = "eager"
        model = model_cls(cfg).float().eval()
        randomize(model, 2000 + seed, gemma=name.startswith("gemma"))
        with tempfile.TemporaryDirectory() as tmp:
            hf_dir = Path(tmp) / name
            # A copy is cast, so the reference keeps float32 buffers (RoPE inv_freq).
            copy.deepcopy(model).to(torch.bfloat16).save_pretrained(hf_dir,
                                                                    safe_serialization=True)
            # The Gemma converter trims the embedding to the tokenizer's size.
            (hf_dir / "tokenizer.json").write_text(json.dumps(
                {"model": {"vocab": {f"t{i}": i for i in range(N_VOCAB)}}, "added_tokens": []}))
            keep_hf_dir(hf_dir, args.out / "hf" / name)
            convert(args.llama_cpp, hf_dir, args.out / f"{name}.gguf", extra)
        rows = []
        with torch.no_grad():
            for ids in PROMPTS:
                logits = model(torch.tensor([ids])).logits[0].float().numpy()
                rows.append(logits)
        np.concatenate(rows).astype("<f4").tofile(args.out / f"{name}.logits.f32")
        meta = {"case": name, "n_vocab": N_VOCAB, "prompts": PROMPTS,
                "source": f"transformers {transformers.__version__} ({model_cls.__name__}, "
                          f"float32, eager attention), torch {torch.__version__}"}
        (args.out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{name}: {args.out / (name + '.gguf')} "
              f"({(args.out / (name + '.gguf')).stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    main()
