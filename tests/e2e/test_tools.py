"""Tool calling and reasoning through `tessera serve` with the official openai client.

SmolLM2 (greedy) copies a JSON call it is shown, which the generic tool-call parser of its
template (no tool syntax of its own) reads as a call: the full path -- request, template,
engine, parser, OpenAI shapes streamed and not -- on a real model. A small template that
opens a <think> block in the prompt covers reasoning, chat_template_kwargs and tools in
the template."""
import json

import pytest

from serverlib import smollm2_server

MODEL = "SmolLM2-135M-Instruct-Q4_1"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}
COPY_CALL = [{"role": "user", "content":
              'Copy this JSON exactly: {"name": "get_weather", "arguments": {"city": "Paris"}}'}]

# SmolLM2's template, plus tools in the system turn and a generation prompt that opens a
# <think> block unless enable_thinking is false (as DeepSeek-R1-style templates do).
THINK_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\nTools: ' + tools | tojson + '<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is not defined or enable_thinking %}{{ '<think>\\n' }}{% endif %}"
    "{% endif %}")


@pytest.fixture(scope="module")
def smol(smollm2, tmp_path_factory):
    s = smollm2_server(smollm2, tmp_path_factory.mktemp("srv") / "smol_tools.log")
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def thinker(smollm2, tmp_path_factory):
    d = tmp_path_factory.mktemp("think")
    (d / "think.jinja").write_text(THINK_TEMPLATE)
    s = smollm2_server(smollm2, d / "think.log", "--chat-template", d / "think.jinja")
    yield s
    assert s.stop() == 0, s.logs()


def chat(server, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 40)
    return server.client().chat.completions.create(model=MODEL, **kw)


def reassemble(chunks):
    """The message OpenAI clients rebuild from stream chunks, checking each chunk's shape."""
    content, reasoning, calls, finish = "", "", {}, None
    assert chunks[0].choices[0].delta.role == "assistant"
    for ch in chunks:
        assert ch.object == "chat.completion.chunk"
        (c,) = ch.choices
        d = c.delta
        content += d.content or ""
        reasoning += getattr(d, "reasoning_content", None) or ""
        for tc in d.tool_calls or []:
            if tc.index not in calls:
                # A call's first delta carries its id, type and name, and no arguments yet.
                assert tc.id and tc.type == "function" and tc.function.name, tc
                assert tc.function.arguments == "", tc
                calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
            else:
                assert tc.id is None and tc.function.name is None, tc
                calls[tc.index]["arguments"] += tc.function.arguments
        if c.finish_reason:
            assert finish is None
            finish = c.finish_reason
    assert sorted(calls) == list(range(len(calls)))
    return content, reasoning, [calls[i] for i in sorted(calls)], finish


def test_a_call_is_parsed(smol):
    r = chat(smol, messages=COPY_CALL, tools=[WEATHER])
    (c,) = r.choices
    assert c.finish_reason == "tool_calls"
    assert c.message.role == "assistant" and c.message.content is None
    (call,) = c.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id.startswith("call_") and len(call.id) == 29
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_streamed_call_equals_unstreamed(smol):
    whole = chat(smol, messages=COPY_CALL, tools=[WEATHER]).choices[0]
    chunks = list(chat(smol, messages=COPY_CALL, tools=[WEATHER], stream=True))
    content, reasoning, calls, finish = reassemble(chunks)
    assert finish == whole.finish_reason == "tool_calls"
    assert content == "" and reasoning == ""
    assert [(c["name"], c["arguments"]) for c in calls] == \
        [(t.function.name, t.function.arguments) for t in whole.message.tool_calls]
    # The client library's own accumulation agrees.
    with smol.client().chat.completions.stream(model=MODEL, messages=COPY_CALL, tools=[WEATHER],
                                               temperature=0, max_tokens=40) as s:
        final = s.get_final_completion()
    (t,) = final.choices[0].message.tool_calls
    assert (t.function.name, t.function.arguments) == (calls[0]["name"], calls[0]["arguments"])


def test_tool_choice_none_is_text(smol):
    r = chat(smol, messages=COPY_CALL, tools=[WEATHER], tool_choice="none")
    (c,) = r.choices
    assert c.finish_reason == "stop" and not c.message.tool_calls
    assert json.loads(c.message.content) == {"name": "get_weather", "arguments": {"city": "Paris"}}


def test_plain_chat_is_unchanged_with_tools(smol):
    msgs = [{"role": "user", "content": "Say hello."}]
    with_tools = chat(smol, messages=msgs, tools=[WEATHER]).choices[0]
    without = chat(smol, messages=msgs).choices[0]
    # SmolLM2's template ignores tools: same prompt, same greedy text, no calls.
    assert with_tools.message.content == without.message.content
    assert not with_tools.message.tool_calls and with_tools.finish_reason == without.finish_reason


def test_call_and_result_sent_back(smol):
    r = chat(smol, tools=[WEATHER], messages=COPY_CALL + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ])
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_reasoning_opened_by_the_prompt(thinker):
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    r = chat(thinker, messages=msgs)
    m = r.choices[0].message
    # SmolLM2 never closes the block: everything it writes is reasoning.
    assert isinstance(m.reasoning_content, str) and m.reasoning_content.strip()
    assert m.content == ""
    content, reasoning, calls, finish = reassemble(list(chat(thinker, messages=msgs, stream=True)))
    assert (content, reasoning, calls, finish) == ("", m.reasoning_content, [], r.choices[0].finish_reason)

    # enable_thinking=false reaches the template: no block, so all of it is the answer.
    r = chat(thinker, messages=msgs, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    m = r.choices[0].message
    assert m.content and getattr(m, "reasoning_content", None) is None


def test_tools_reach_the_template(thinker):
    msgs = [{"role": "user", "content": "Hi"}]
    plain = chat(thinker, messages=msgs, max_tokens=1).usage.prompt_tokens
    tools = chat(thinker, messages=msgs, max_tokens=1, tools=[WEATHER]).usage.prompt_tokens
    assert tools > plain + 20


def error_of(r, param):
    assert r.status_code == 400, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["param"] == param, err
    return err["message"]


def test_bad_requests_name_the_field(smol):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    bad = [
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]},
         "tools[0].function.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format.json_schema.schema"),
        ({"response_format": {"type": "json_object"}, "guided_regex": "a+"}, "guided_regex"),
        ({"guided_choice": []}, "guided_choice"),
        ({"chat_template_kwargs": "enable_thinking"}, "chat_template_kwargs"),
        ({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
    ]
    for extra, param in bad:
        error_of(smol.post("/v1/chat/completions", {**body, **extra}), param)
    error_of(smol.post("/v1/completions", {"model": MODEL, "prompt": "x", "tools": [WEATHER]}),
             "tools")
    # A schema nested beyond reason is refused before anything walks it.
    deep = '{"type": "object", "properties": {"a": ' * 100000 + "{}" + "}}" * 100000
    raw = ('{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", '
           '"function": {"name": "f", "parameters": ' + deep + '}}]}')
    r = smol.post("/v1/chat/completions", raw.encode(), {"Content-Type": "application/json"})
    assert r.status_code == 400 and "deeper" in r.json()["error"]["message"], r.text
    assert smol.get("/health").status_code == 200
