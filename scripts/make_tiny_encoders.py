#!/usr/bin/env python3
"""Tiny random encoders with reference outputs from transformers, for tests/data/encoders/.

  bert-cross/     BertForSequenceClassification (1 label): a cross-encoder, WordPiece
                  tokenizer of ~200 tokens, 64 positions
  roberta/        RobertaModel with a byte-level BPE tokenizer trained here, and
                  sentence-transformers files (mean pooling, no Normalize)
  roberta-cross/  RobertaForSequenceClassification (1 label), same tokenizer
  refs.json       per model: the inputs, transformers' token ids / segment ids, and its
                  float32 outputs (classifier logits; mean-pooled last hidden states);
                  and, for the tiny decoders of tests/data/archs/hf/{llama,qwen3}, their
                  final hidden states (after the last norm) pooled by last token and mean

Weights are random (seeded) float32; every reference runs in float32 in eval mode. Pairs
longer than the 64 positions are cut by the tokenizer's "longest_first" truncation.

Requirements (outside the repo): pip install torch transformers tokenizers safetensors
Usage: python scripts/make_tiny_encoders.py [--out tests/data/encoders]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import transformers
from tokenizers import ByteLevelBPETokenizer, Tokenizer, models, normalizers, pre_tokenizers
from tokenizers import processors

ROOT = Path(__file__).resolve().parents[1]
MAX_POS = 64

WORDS = """the a an is are was of in on to and or for with at by from this that it be as not
what where who how capital city country france paris germany berlin china beijing river
cat dog bird fish eats runs sleeps house car tree water fire food music book read write
learn model language machine embedding vector search query document rank score good bad
big small red blue green one two three year day night people world computer data""".split()

PAIRS = [
    ("what is the capital of france", "paris is the capital of france."),
    ("what is the capital of france", "berlin is a city in germany."),
    ("What is the CAPITAL of France?", "The cat sleeps in the house."),
    ("who writes books", "people read and write books."),
    ("machine learning", "a model can learn from data."),
    ("北京 is the capital of china", "beijing is a big city."),
    ("dog", "the dog runs and the cat sleeps"),
    ("search query", " ".join(["the document is about search and rank"] * 12)),
    (" ".join(["what is a good embedding model for search"] * 8),
     " ".join(["vector search ranks documents by score"] * 8)),
    ("é à ü", "naïve café"),
]
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France.",
    "hello world",
    "Machine learning models map text to vectors.",
    "a",
    " ".join(["search and rank documents"] * 10),
]
CORPUS = TEXTS[:-1] + [a + " " + b for a, b in PAIRS[:7]] + [
    "The dog runs in the park and the bird sings.",
    "Computers read data and write results.",
]


def wordpiece_tokenizer() -> Tokenizer:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(".,?!'-") + [str(d) for d in range(10)]
    vocab += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab += ["##ing", "##ed", "##er", "##ly", "北", "京"]
    for w in WORDS:
        if w not in vocab:
            vocab.append(w)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return tok


def bpe_tokenizer() -> Tokenizer:
    bt = ByteLevelBPETokenizer()
    bt.train_from_iterator(CORPUS, vocab_size=420, min_frequency=1,
                           special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok = bt._tokenizer
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


def encode(tok: Tokenizer, first, second=None):
    tok.enable_truncation(MAX_POS, strategy="longest_first")
    e = tok.encode(first, second) if second is not None else tok.encode(first)
    return e.ids, e.type_ids


def save_dir(out: Path, model, tok: Tokenizer, tokenizer_config: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.no_truncation()
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1) + "\n")


def randomize(model) -> None:
    # Wider than the default 0.02 initialisation, so that every weight moves the outputs.
    torch.manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))


def cross_encoder(out: Path, cls, config, tok: Tokenizer, tok_cfg: dict) -> dict:
    model = cls(config).eval()
    randomize(model)
    save_dir(out, model, tok, tok_cfg)
    ref = {"pairs": [], "ids": [], "types": [], "logits": []}
    for a, b in PAIRS:
        ids, types = encode(tok, a, b)
        with torch.no_grad():
            logit = model(input_ids=torch.tensor([ids]),
                          token_type_ids=torch.tensor([types])).logits[0, 0].item()
        ref["pairs"].append([a, b])
        ref["ids"].append(ids)
        ref["types"].append(types)
        ref["logits"].append(logit)
    return ref


def decoder_hidden(case: str) -> dict:
    arch_dir = ROOT / "tests" / "data" / "archs"
    prompts = json.loads((arch_dir / f"{case}.json").read_text())["prompts"]
    model = transformers.AutoModel.from_pretrained(arch_dir / "hf" / case,
                                                   dtype=torch.float32).eval()
    ref = {"prompts": prompts, "last": [], "mean": []}
    for p in prompts:
        with torch.no_grad():
            h = model(input_ids=torch.tensor([p])).last_hidden_state[0]
        ref["last"].append(h[-1].tolist())
        ref["mean"].append(h.mean(0).tolist())
    return ref


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "encoders"))
    out = Path(ap.parse_args().out)
    refs: dict = {"source": f"transformers {transformers.__version__}, torch {torch.__version__}"}

    wp = wordpiece_tokenizer()
    bert_cfg = transformers.BertConfig(
        vocab_size=wp.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=MAX_POS,
        type_vocab_size=2, num_labels=1, hidden_act="gelu", layer_norm_eps=1e-12,
        pad_token_id=0)
    refs["bert-cross"] = cross_encoder(
        out / "bert-cross", transformers.BertForSequenceClassification, bert_cfg, wp,
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "cls_token": "[CLS]",
         "sep_token": "[SEP]", "unk_token": "[UNK]", "pad_token": "[PAD]",
         "mask_token": "[MASK]", "model_max_length": MAX_POS})

    bpe = bpe_tokenizer()
    rob_kw = dict(vocab_size=bpe.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=MAX_POS + 2, type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, hidden_act="gelu", layer_norm_eps=1e-5)
    rob_tok_cfg = {"tokenizer_class": "RobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                   "cls_token": "<s>", "sep_token": "</s>", "unk_token": "<unk>",
                   "pad_token": "<pad>", "mask_token": "<mask>", "model_max_length": MAX_POS}
    refs["roberta-cross"] = cross_encoder(
        out / "roberta-cross", transformers.RobertaForSequenceClassification,
        transformers.RobertaConfig(num_labels=1, **rob_kw), bpe, rob_tok_cfg)

    rob = transformers.RobertaModel(transformers.RobertaConfig(**rob_kw)).eval()
    randomize(rob)
    rdir = out / "roberta"
    save_dir(rdir, rob, bpe, rob_tok_cfg)
    (rdir / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}], indent=1) + "\n")
    (rdir / "1_Pooling").mkdir(exist_ok=True)
    (rdir / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": False,
         "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
         "pooling_mode_mean_sqrt_len_tokens": False}, indent=1) + "\n")
    emb = {"texts": TEXTS, "ids": [], "mean": []}
    for t in TEXTS:
        ids, _ = encode(bpe, t)
        with torch.no_grad():
            h = rob(input_ids=torch.tensor([ids])).last_hidden_state[0]
        emb["ids"].append(ids)
        emb["mean"].append(h.mean(0).tolist())
    refs["roberta"] = emb

    refs["decoders"] = {case: decoder_hidden(case) for case in ("llama", "qwen3")}
    (out / "refs.json").write_text(json.dumps(refs, indent=1) + "\n")
    for d in ("bert-cross", "roberta", "roberta-cross"):
        print(d, sorted(p.name for p in (out / d).iterdir()))


if __name__ == "__main__":
    main()
