"""LLM.chat through the model's template, LLM.stream deltas, the tokenizer."""
import time

import pytest
from tessera import SamplingParams

GREEDY = SamplingParams(temperature=0, max_tokens=16)
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_renders_the_model_template(llm):
    out = llm.chat(HELLO, GREEDY)[0]
    assert out.prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in out.prompt
    # The same tokens as the rendered prompt given as text.
    direct = llm.generate({"prompt_token_ids": out.prompt_token_ids}, GREEDY)[0]
    assert direct.outputs[0].token_ids == out.outputs[0].token_ids


def test_chat_options_and_batches(llm):
    no_gen = llm.chat(HELLO, GREEDY, add_generation_prompt=False)[0]
    assert not no_gen.prompt.endswith("<|im_start|>assistant\n")
    custom = llm.chat(HELLO, GREEDY,
                      chat_template="{% for m in messages %}Q: {{ m.content }}\n{% endfor %}A:")[0]
    assert custom.prompt == "Q: What is the capital of France?\nA:"
    batch = llm.chat([HELLO, [{"role": "user", "content": "Say hello."}]], GREEDY)
    assert len(batch) == 2 and batch[0].outputs[0].token_ids == llm.chat(
        HELLO, GREEDY)[0].outputs[0].token_ids
    parts = llm.chat([{"role": "user", "content": [{"type": "text", "text": "What is the "},
                                                   {"type": "text", "text": "capital?"}]}],
                     GREEDY)[0]
    assert "What is the \ncapital?" in parts.prompt


def test_chat_tools_and_template_kwargs_reach_the_template(llm):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    tmpl = ("{% for t in tools %}[{{ t.function.name }}]{% endfor %}"
            "{{ messages[0].content }}{{ suffix }}")
    out = llm.chat(HELLO, GREEDY, chat_template=tmpl, tools=tools,
                   chat_template_kwargs={"suffix": " A:"})[0]
    assert out.prompt == "[get_weather]What is the capital of France? A:"
    with pytest.raises(ValueError, match="chat_template_kwargs"):
        llm.chat(HELLO, chat_template_kwargs={"messages": []})
    with pytest.raises(ValueError, match="tools"):
        llm.chat(HELLO, tools="get_weather")


def test_chat_errors_name_the_field(llm):
    with pytest.raises(ValueError, match=r"messages\[0\]\.role"):
        llm.chat([{"role": "wizard", "content": "hi"}])
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        llm.chat([{"role": "user", "content": "hi"}, "not a message"])
    with pytest.raises(ValueError, match="messages"):
        llm.chat([])
    with pytest.raises(ValueError, match=r"conversation 1: .*messages\[0\]\.content"):
        llm.chat([HELLO, [{"role": "user", "content": 42}]])
    with pytest.raises(ValueError, match="chat template"):
        llm.chat(HELLO, chat_template="{% for %}")


def test_stream_deltas_add_up_to_generate(llm):
    prompts = ["The capital of France is", "Once upon a time"]
    p = SamplingParams(temperature=0, max_tokens=20, n=2, logprobs=1)
    full = llm.generate(prompts, p)
    text = {}
    ids = {}
    cum = {}
    finished = {}
    for delta in llm.stream(prompts, p):
        key = delta.prompt
        assert delta.prompt_token_ids == full[prompts.index(key)].prompt_token_ids
        for c in delta.outputs:
            text[key, c.index] = text.get((key, c.index), "") + c.text
            ids.setdefault((key, c.index), []).extend(c.token_ids)
            assert len(c.logprobs) == len(c.token_ids)
            cum[key, c.index] = c.cumulative_logprob
        assert not finished.get(key), "a delta after the prompt's last one"
        finished[key] = delta.finished
    assert all(finished.values()) and len(finished) == 2
    for i, prompt in enumerate(prompts):
        for c in full[i].outputs:
            assert text[prompt, c.index] == c.text
            assert ids[prompt, c.index] == c.token_ids
            assert cum[prompt, c.index] == pytest.approx(c.cumulative_logprob)


def test_closing_a_stream_aborts_its_requests(llm):
    stream = llm.stream(["Once upon a time"] * 4,
                        SamplingParams(temperature=0, max_tokens=2000, ignore_eos=True))
    try:
        next(stream)
        deadline = time.monotonic() + 10
        while llm.stats()["num_running"] < 4 and time.monotonic() < deadline:
            next(stream)
        assert llm.stats()["num_running"] == 4
    finally:
        stream.close()
    deadline = time.monotonic() + 10
    while llm.stats()["num_running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert llm.stats()["num_running"] == 0


def test_tokenizer(llm):
    tok = llm.get_tokenizer()
    assert tok is llm.tokenizer
    ids = tok.encode("Hello world, héllo 世界!")
    assert tok.decode(ids) == "Hello world, héllo 世界!"
    assert tok.encode("<|im_start|>user") [0] == tok.encode("<|im_start|>")[0]
    assert len(tok) == tok.vocab_size == 49152
    assert tok.eos_token_id is not None
    im_end = tok.encode("<|im_end|>", add_special_tokens=False)
    assert tok.decode(im_end) == ""
    assert tok.decode(im_end, skip_special_tokens=False) == "<|im_end|>"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([49152])
