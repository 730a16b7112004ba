"""LLM.generate: the CLI's greedy tokens, batching, sampling parameters, prompt forms."""
import json
import subprocess

import pytest
from conftest import tessera_bin
from tessera import CompletionOutput, Logprob, RequestOutput, SamplingParams

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "To make a cup of tea, first",
    "Water boils at a temperature of",
    "The largest planet in the solar system is",
    "A haiku about autumn:\n",
    "In machine learning, overfitting means",
    "1, 2, 3, 4, 5,",
]
GREEDY = SamplingParams(temperature=0, max_tokens=24)


def cli_greedy(model, prompt, n):
    p = subprocess.run([tessera_bin(), "run", "-m", str(model), "-p", prompt, "-n", str(n),
                        "--temp", "0", "--json", "-t", "2"],
                       capture_output=True, text=True, timeout=300, check=True)
    return json.loads(p.stdout)


def test_greedy_equals_tessera_run(llm, smollm2_path):
    outs = llm.generate(PROMPTS, GREEDY)
    assert len(outs) == len(PROMPTS)
    for prompt, out in zip(PROMPTS, outs):
        ref = cli_greedy(smollm2_path, prompt, 24)
        assert out.prompt == prompt
        assert out.prompt_token_ids == ref["prompt_tokens"]
        c = out.outputs[0]
        assert c.token_ids == ref["tokens"], prompt
        assert c.text == ref["text"], prompt
        assert c.finish_reason == ("length" if len(ref["tokens"]) == 24 else "stop")


def test_result_shapes(llm):
    out = llm.generate("The capital of France is", GREEDY)
    assert isinstance(out, list) and len(out) == 1
    r = out[0]
    assert isinstance(r, RequestOutput) and r.finished
    assert isinstance(r.outputs[0], CompletionOutput)
    assert r.outputs[0].index == 0 and r.outputs[0].finished()
    assert r.outputs[0].logprobs is None and r.outputs[0].cumulative_logprob is None
    assert r.prompt_logprobs is None


def test_prompt_forms(llm):
    text = "The three primary colors are"
    ids = llm.tokenizer.encode(text)
    p = SamplingParams(temperature=0, max_tokens=6)
    by_text = llm.generate(text, p)[0]
    assert by_text.prompt_token_ids == ids
    for form in (ids, {"prompt": text}, {"prompt_token_ids": ids}):
        out = llm.generate(form, p)[0]
        assert out.prompt_token_ids == ids
        assert out.outputs[0].token_ids == by_text.outputs[0].token_ids
    mixed = llm.generate([text, ids, {"prompt_token_ids": ids}], p)
    assert [o.outputs[0].token_ids for o in mixed] == [by_text.outputs[0].token_ids] * 3
    assert [o.prompt for o in mixed] == [text, None, None]
    assert llm.generate([], p) == []


def test_64_prompts_in_one_call_run_batched(llm):
    prompts = [f"Item {i}: the number {i} written in words is" for i in range(64)]
    p = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    before = llm.stats()["steps_total"]
    batched = llm.generate(prompts, p)
    steps = llm.stats()["steps_total"] - before
    # One sequence at a time would take 64 x 8 decode steps (plus prefill); batched, the
    # 64 sequences share steps.
    assert steps < 64 * 8 / 4, steps
    singles = [llm.generate(q, p)[0] for q in prompts[:8]]
    for b, s in zip(batched, singles):
        assert b.outputs[0].token_ids == s.outputs[0].token_ids
    assert all(len(o.outputs[0].token_ids) == 8 for o in batched)


def test_seeded_sampling_is_reproducible(llm):
    p = SamplingParams(temperature=1.0, top_p=0.95, seed=1234, max_tokens=24, ignore_eos=True)
    a = llm.generate(PROMPTS[:3], p)
    b = llm.generate(PROMPTS[:3], p)
    assert [o.outputs[0].token_ids for o in a] == [o.outputs[0].token_ids for o in b]
    other = llm.generate(PROMPTS[:3], SamplingParams(temperature=1.0, top_p=0.95, seed=99,
                                                     max_tokens=24, ignore_eos=True))
    assert [o.outputs[0].token_ids for o in a] != [o.outputs[0].token_ids for o in other]


def test_n_choices(llm):
    p = SamplingParams(n=3, temperature=1.0, seed=7, max_tokens=16, ignore_eos=True)
    out = llm.generate("Once upon a time", p)[0]
    assert [c.index for c in out.outputs] == [0, 1, 2]
    ids = [c.token_ids for c in out.outputs]
    assert len({tuple(x) for x in ids}) > 1  # choice j samples with seed + j
    again = llm.generate("Once upon a time", p)[0]
    assert [c.token_ids for c in again.outputs] == ids
    # Choice j is what n=1 gives with seed + j.
    one = llm.generate("Once upon a time", SamplingParams(temperature=1.0, seed=8, max_tokens=16,
                                                          ignore_eos=True))[0]
    assert one.outputs[0].token_ids == ids[1]


def test_logprobs(llm):
    out = llm.generate("The capital of France is",
                       SamplingParams(temperature=0, max_tokens=8, logprobs=3))[0].outputs[0]
    assert len(out.logprobs) == len(out.token_ids)
    total = 0.0
    for tid, lps in zip(out.token_ids, out.logprobs):
        assert tid in lps and 3 <= len(lps) <= 4
        assert all(isinstance(v, Logprob) for v in lps.values())
        chosen = lps[tid]
        assert chosen.rank == 1  # greedy picks the most likely token
        assert chosen.logprob == max(v.logprob for v in lps.values())
        assert sorted(v.rank for v in lps.values()) == [1, 2, 3]
        assert chosen.decoded_token == llm.tokenizer.decode([tid])
        assert all(v.logprob <= 0 for v in lps.values())
        total += chosen.logprob
    assert out.cumulative_logprob == pytest.approx(total)
    # Sampled tokens outside the top k still get their rank.
    sampled = llm.generate("Once upon a time", SamplingParams(
        temperature=2.0, seed=3, max_tokens=32, ignore_eos=True, logprobs=0))[0].outputs[0]
    assert all(len(d) == 1 for d in sampled.logprobs)
    ranks = [d[t].rank for t, d in zip(sampled.token_ids, sampled.logprobs)]
    assert all(r >= 1 for r in ranks) and max(ranks) > 1


def test_stop_strings_and_stop_token_ids(llm):
    prompt = "1, 2, 3, 4, 5,"
    full = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=20))[0].outputs[0]
    assert " 8" in full.text, full.text
    cut = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=20,
                                              stop=[" 8"]))[0].outputs[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:full.text.index(" 8")]
    k = 4
    stop_id = full.token_ids[k]
    assert stop_id not in full.token_ids[:k]
    by_id = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=20,
                                                stop_token_ids=[stop_id]))[0].outputs[0]
    assert by_id.finish_reason == "stop"
    assert by_id.token_ids == full.token_ids[:k]


def test_max_tokens_none_runs_to_the_context_end(smollm2_path):
    from tessera import LLM
    small = LLM(smollm2_path, kv_cache_memory="64MiB", max_model_len=40, threads=2)
    assert small.max_model_len == 40
    out = small.generate("Once upon a time", SamplingParams(temperature=0, max_tokens=None,
                                                           ignore_eos=True))[0]
    assert len(out.prompt_token_ids) + len(out.outputs[0].token_ids) == 40
    assert out.outputs[0].finish_reason == "length"
    with pytest.raises(ValueError, match="max_model_len 40"):
        small.generate("Once upon a time", SamplingParams(max_tokens=39))


def test_per_prompt_sampling_params(llm):
    outs = llm.generate(["The capital of France is"] * 2,
                        [SamplingParams(temperature=0, max_tokens=3),
                         SamplingParams(temperature=0, max_tokens=7)])
    assert [len(o.outputs[0].token_ids) for o in outs] == [3, 7]
    assert outs[1].outputs[0].token_ids[:3] == outs[0].outputs[0].token_ids


def test_logit_bias(llm):
    base = llm.generate("The capital of France is",
                        SamplingParams(temperature=0, max_tokens=1))[0].outputs[0].token_ids[0]
    target = llm.tokenizer.encode(" London")[0]
    biased = llm.generate("The capital of France is", SamplingParams(
        temperature=0, max_tokens=1, logit_bias={target: 100}))[0].outputs[0].token_ids[0]
    assert base != target and biased == target


def test_concurrent_calls_release_the_gil(llm):
    import threading
    results = {}

    def work(key, prompt):
        results[key] = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=48,
                                                           ignore_eos=True))
    threads = [threading.Thread(target=work, args=(i, PROMPTS[i])) for i in range(2)]
    for t in threads:
        t.start()
    ticks = 0
    while any(t.is_alive() for t in threads):
        ticks += 1  # runs only while the generating threads have released the GIL
        threads[0].join(0.002)
    for t in threads:
        t.join()
    assert ticks > 20, ticks
    for i in range(2):
        alone = llm.generate(PROMPTS[i], SamplingParams(temperature=0, max_tokens=48,
                                                        ignore_eos=True))
        assert results[i][0].outputs[0].token_ids == alone[0].outputs[0].token_ids
