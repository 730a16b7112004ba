#!/usr/bin/env python3
"""Writes a tiny random Hugging Face Llama checkpoint (standard library only).

    make_tiny_hf_llama.py OUT_DIR [--seed N] [--dtype F16|F32|BF16] [--layers N] [--hidden N]

OUT_DIR gets config.json (LlamaForCausalLM), model.safetensors (HF tensor names, Q/K in the
rotate-half order HF uses), tokenizer.json (byte-level BPE over the 256 byte tokens plus a
few hundred merges learnt from a fixed English text, Llama 3 pre-tokenizer, special tokens
<|begin_of_text|> / <|end_of_text|> / <|eot_id|>), tokenizer_config.json and
generation_config.json. The weights are random but deterministic in --seed; the model is
meant for comparing implementations (Tessera on the directory vs llama.cpp on the GGUF that
`tessera convert` writes), not for producing sensible text.
"""
import argparse
import json
import math
import os
import random
import struct

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TRAIN_TEXT = (
    "the quick brown fox jumps over the lazy dog. once upon a time there was a little girl "
    "who lived in a village near the forest. she liked to walk in the woods and pick flowers. "
    "one day she met a wolf, and the wolf asked her where she was going. "
) * 4


def byte_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def learn_merges(text, n_merges, b2u):
    """Plain BPE training over space-prefixed words (enough for a test vocabulary)."""
    words = {}
    for i, w in enumerate(text.split(" ")):
        if not w:
            continue
        w = (" " if i else "") + w
        key = tuple(b2u[b] for b in w.encode())
        words[key] = words.get(key, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def tokenizer_json(n_merges):
    b2u = byte_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = learn_merges(TRAIN_TEXT, n_merges, b2u)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    n = len(vocab)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    added = [{"id": n + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    return {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "byte_fallback": False,
                  "ignore_merges": True, "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }, n + len(specials)


def pack(values, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)
    # BF16: the high half of the F32 bits, rounded to nearest even.
    out = bytearray()
    for v in values:
        u = struct.unpack("<I", struct.pack("<f", v))[0]
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        out += struct.pack("<H", u)
    return bytes(out)


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name, shape, values in tensors:
        dt = "F32" if len(shape) == 1 else dtype
        b = pack(values, dt)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dtype", default="F16", choices=["F16", "F32", "BF16"])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ff", type=int, default=128)
    args = ap.parse_args()

    tok, n_vocab = tokenizer_json(200)
    n_vocab_padded = (n_vocab + 63) // 64 * 64  # embedding rows beyond the tokenizer, as in real models
    os.makedirs(args.out, exist_ok=True)
    E, H, KV, F = args.hidden, args.heads, args.kv_heads, args.ff
    hd = E // H
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": E, "intermediate_size": F, "num_hidden_layers": args.layers,
        "num_attention_heads": H, "num_key_value_heads": KV, "vocab_size": n_vocab_padded,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "bos_token_id": n_vocab - 3, "eos_token_id": n_vocab - 2,
        "torch_dtype": {"F16": "float16", "F32": "float32", "BF16": "bfloat16"}[args.dtype],
    }
    rng = random.Random(args.seed)

    def mat(rows, cols, scale):
        return [rng.gauss(0.0, scale) for _ in range(rows * cols)]

    def norm(n):
        return [1.0 + rng.gauss(0.0, 0.1) for _ in range(n)]

    ts = [("model.embed_tokens.weight", [n_vocab_padded, E], mat(n_vocab_padded, E, 1.0))]
    for l in range(args.layers):
        p = "model.layers.%d." % l
        s = 1.0 / math.sqrt(E)
        ts += [(p + "input_layernorm.weight", [E], norm(E)),
               (p + "self_attn.q_proj.weight", [H * hd, E], mat(H * hd, E, 2 * s)),
               (p + "self_attn.k_proj.weight", [KV * hd, E], mat(KV * hd, E, 2 * s)),
               (p + "self_attn.v_proj.weight", [KV * hd, E], mat(KV * hd, E, s)),
               (p + "self_attn.o_proj.weight", [E, H * hd], mat(E, H * hd, s)),
               (p + "post_attention_layernorm.weight", [E], norm(E)),
               (p + "mlp.gate_proj.weight", [F, E], mat(F, E, s)),
               (p + "mlp.up_proj.weight", [F, E], mat(F, E, s)),
               (p + "mlp.down_proj.weight", [E, F], mat(E, F, 1.0 / math.sqrt(F)))]
    ts += [("model.norm.weight", [E], norm(E)),
           ("lm_head.weight", [n_vocab_padded, E], mat(n_vocab_padded, E, 3.0 / math.sqrt(E)))]

    write_safetensors(os.path.join(args.out, "model.safetensors"), ts, args.dtype)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                   "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}, f)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": n_vocab - 3, "eos_token_id": [n_vocab - 2, n_vocab - 1]}, f)


if __name__ == "__main__":
    main()
