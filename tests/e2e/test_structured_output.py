"""Structured output and forced tool calls through `tessera serve` with the official openai
client on SmolLM2: JSON Schema conformance (python-jsonschema validates every output that
finished), json_object, Pydantic parse(), regex / choice / GBNF, n > 1 with logprobs and
stop, streaming tool-call deltas with tool_choice required / named, and 400s (with bounded
time) for what cannot be enforced.

Greedy SmolLM2 may repeat itself inside a JSON string until max_tokens; the grammar then
closes the string and the document in the last tokens the budget leaves (fit_budget in
src/structured/sequence_grammar.cpp), so every output is a whole document that validates,
whether it finished by itself or was closed at max_tokens."""
import concurrent.futures as cf
import json
import re
import time

import jsonschema
import pydantic
import pytest

from serverlib import smollm2_server
from structured_schemas import REQUIRED_KEYWORDS, SCHEMAS, keywords_used

MODEL = "SmolLM2-135M-Instruct-Q4_1"
CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


@pytest.fixture(scope="module")
def smol(smollm2, tmp_path_factory):
    s = smollm2_server(smollm2, tmp_path_factory.mktemp("so") / "server.log")
    yield s
    s.stop()


def chat(client, prompt, max_tokens=200, **kw):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], temperature=0,
        max_tokens=max_tokens, **kw)


def test_suite_covers_every_keyword():
    used = set()
    for _, schema, _ in SCHEMAS:
        keywords_used(schema, used)
    assert len(SCHEMAS) >= 60
    assert REQUIRED_KEYWORDS <= used, REQUIRED_KEYWORDS - used
    for name, schema, _ in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("extra", [{}, {"repetition_penalty": 1.1}])
def test_json_schema_conformance(smol, capsys, extra):
    """Greedy, and greedy with a mild repetition penalty: every output validates."""
    client = smol.client()

    def run(entry):
        name, schema, prompt = entry
        r = chat(client, prompt, max_tokens=160, extra_body=extra, response_format={
            "type": "json_schema", "json_schema": {"name": name, "schema": schema,
                                                   "strict": True}})
        return name, schema, r.choices[0], r.usage.completion_tokens

    with cf.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(run, SCHEMAS))
    n_valid, closed, tail = 0, [], []
    for name, schema, choice, n_tokens in results:
        assert choice.finish_reason in ("stop", "length"), (name, choice)
        try:
            value = json.loads(choice.message.content)
            jsonschema.validate(value, schema, format_checker=CHECKER)
        except (ValueError, jsonschema.ValidationError) as e:
            raise AssertionError(f"{name}: {choice.message.content!r}: {e}") from e
        n_valid += 1
        if choice.finish_reason == "length":
            closed.append(name)
        if n_tokens > 160 - 16:
            tail.append(name)
    with capsys.disabled():
        print(f"\n[conformance {extra}] {len(SCHEMAS)} schemas: {n_valid} valid; "
              f"{len(tail)} ran into the last 16 tokens of max_tokens {tail}, "
              f"{len(closed)} of them ended at max_tokens {closed}")
    assert n_valid == len(SCHEMAS)


def test_json_object_always_parses(smol):
    client = smol.client()
    prompts = ["Describe a cat.", "List three fruits.", "Who are you?", "Write Python code.",
               "What is 2+2?", "Give me a recipe."]
    for p in prompts:
        for max_tokens in (120, 12):
            r = chat(client, p, max_tokens=max_tokens, response_format={"type": "json_object"})
            c = r.choices[0]
            assert isinstance(json.loads(c.message.content), dict), (max_tokens, c)


class Address(pydantic.BaseModel):
    city: str
    country: str


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0, le=150)
    address: Address


def test_pydantic_parse(smol):
    client = smol.client()
    parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
    r = parse(model=MODEL, messages=[{"role": "user", "content":
                                      "Ann is 31 and lives in Paris, France. Extract her details."}],
              response_format=Person, temperature=0, max_tokens=200)
    c = r.choices[0]
    assert c.finish_reason == "stop", c
    assert isinstance(c.message.parsed, Person)
    assert 0 <= c.message.parsed.age <= 150


def test_regex_choice_and_grammar(smol):
    client = smol.client()
    r = chat(client, "Give a date.", extra_body={"guided_regex": r"20[0-9]{2}-(0[1-9]|1[0-2])"})
    assert re.fullmatch(r"20[0-9]{2}-(0[1-9]|1[0-2])", r.choices[0].message.content)
    r = chat(client, "Is the sky blue?", extra_body={"guided_choice": ["yes", "no", "maybe"]})
    assert r.choices[0].message.content in ("yes", "no", "maybe")
    g = 'root ::= "The answer is " [0-9]+ "."'
    r = chat(client, "What is 6*7?", extra_body={"grammar": g})
    assert re.fullmatch(r"The answer is [0-9]+\.", r.choices[0].message.content)
    assert r.choices[0].finish_reason == "stop"
    # Completions, with vLLM's field.
    r = client.completions.create(model=MODEL, prompt="The colour of grass is", max_tokens=10,
                                  temperature=0, extra_body={"guided_choice": ["green", "red"]})
    assert r.choices[0].text in ("green", "red")


def test_n_logprobs_stop_and_streaming(smol):
    client = smol.client()
    schema = {"type": "object", "properties": {"colors": {"type": "array", "items": {
        "enum": ["red", "green", "blue"]}, "maxItems": 3}}, "required": ["colors"],
              "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Favourite colours?"}], n=3,
        temperature=1.0, seed=7, max_tokens=60, logprobs=True, top_logprobs=2,
        response_format=rf)
    assert len(r.choices) == 3
    for c in r.choices:
        assert c.finish_reason == "stop"
        jsonschema.validate(json.loads(c.message.content), schema)
        assert len(c.logprobs.content) > 0
    # A stop string cuts the output; the text before it is a prefix of a valid document.
    r = chat(client, "Favourite colours?", response_format=rf, stop=["green"])
    assert r.choices[0].finish_reason == "stop"
    # Streaming gives the same text as the non-streamed answer.
    full = chat(client, "Favourite colours?", response_format=rf).choices[0].message.content
    parts = [ch.choices[0].delta.content or "" for ch in chat(
        client, "Favourite colours?", response_format=rf, stream=True) if ch.choices]
    assert "".join(parts) == full


def test_grammar_that_cannot_finish_in_max_tokens(smol):
    client = smol.client()
    r = chat(client, "Count.", max_tokens=5, extra_body={"guided_regex": "a{50}"})
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content == "a" * len(r.choices[0].message.content)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 30},
        "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"],
        "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "pattern":
                                                           "^[A-Z][a-z]{2,12}/[A-Z][a-z_]{2,12}$"}},
                   "required": ["tz"], "additionalProperties": False}}}


def reassemble(stream):
    calls, finish = {}, None
    for ch in stream:
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        for tc in d.tool_calls or []:
            c = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id:
                assert c["id"] is None  # the id comes once, first
                c["id"] = tc.id
            if tc.function and tc.function.name:
                c["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                c["arguments"] += tc.function.arguments
        finish = ch.choices[0].finish_reason or finish
    return [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("tool_choice,parallel", [
    ("required", False), ("required", True),
    ({"type": "function", "function": {"name": "get_time"}}, True)])
def test_forced_tool_calls(smol, tool_choice, parallel):
    """Every call parses and its arguments validate. With parallel calls allowed, greedy
    SmolLM2 may repeat a call until max_tokens (finish "length"): the calls made are still
    whole and valid."""
    client = smol.client()
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
    prompts = ["What's the weather in Paris?", "What time is it in Tokyo?",
               "Weather in Berlin in fahrenheit please", "Time in New York?"]
    for p in prompts:
        kw = dict(model=MODEL, messages=[{"role": "user", "content": p}], tools=[WEATHER, TIME],
                  tool_choice=tool_choice, parallel_tool_calls=parallel, temperature=0,
                  max_tokens=120)
        r = client.chat.completions.create(**kw)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls" or (parallel and c.finish_reason == "length"), c
        assert c.message.tool_calls, c
        if not parallel or isinstance(tool_choice, dict):
            assert len(c.message.tool_calls) == 1
        for call in c.message.tool_calls:
            assert call.type == "function" and call.id
            if isinstance(tool_choice, dict):
                assert call.function.name == "get_time"
            jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name],
                                format_checker=CHECKER)
        streamed, finish = reassemble(client.chat.completions.create(**kw, stream=True))
        assert finish == c.finish_reason
        assert [(s["name"], s["arguments"]) for s in streamed] == \
            [(t.function.name, t.function.arguments) for t in c.message.tool_calls]


def error_of(resp, param=None):
    assert resp.status_code == 400, (resp.status_code, resp.text)
    err = resp.json()["error"]
    if param:
        assert err["param"] == param, err
    return err["message"]


def test_unenforceable_constraints_are_400(smol):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}

    def post(**kw):
        return smol.post("/v1/chat/completions", {**body, **kw})

    def schema_rf(schema):
        return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}

    for kw in ["multipleOf", "uniqueItems", "patternProperties", "not", "if", "minProperties",
               "propertyNames", "contains"]:
        val = {"multipleOf": 2, "uniqueItems": True, "patternProperties": {"a": {}},
               "not": {}, "if": {}, "minProperties": 1, "propertyNames": {},
               "contains": {}}[kw]
        msg = error_of(post(response_format=schema_rf({"type": "object", "properties": {
            "a": {"type": "integer", kw: val}}})), "response_format")
        assert f"'{kw}'" in msg, msg
    assert "format 'hostname'" in error_of(post(guided_json={"type": "string",
                                                             "format": "hostname"}))
    assert "does not resolve" in error_of(post(json_schema={"$ref": "#/$defs/missing"}))
    assert "offset" in error_of(post(guided_regex="(ab"), "guided_regex")
    assert "backreference" in error_of(post(guided_regex="(a)\\1"))
    assert "lookaround" in error_of(post(guided_regex="(?=a)b"))
    assert "line 2" in error_of(post(grammar='root ::= "a"\nx ::= [b'), "grammar")
    assert "left-recursive" in error_of(post(guided_grammar="root ::= root \"a\" | \"a\""))
    # Forced calls with an uncompilable parameters schema.
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string", "not": {}}}}}}
    error_of(post(tools=[bad_tool], tool_choice="required"), "tools")
    assert smol.get("/health").status_code == 200


def test_hostile_inputs_are_bounded(smol):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 3}
    t0 = time.time()
    # Nested quantifiers and alternations: linear grammar, bounded work.
    r = smol.post("/v1/chat/completions", {**body, "guided_regex": "((a|aa)*)*(b{1,9999}){1,9999}"})
    assert r.status_code == 200, r.text
    r = smol.post("/v1/chat/completions", {**body, "guided_regex": "(((a{9999}){9999}){9999})"})
    assert r.status_code == 200, r.text
    # Counts above the limit.
    error_of(smol.post("/v1/chat/completions", {**body, "guided_regex": "a{100000}"}))
    error_of(smol.post("/v1/chat/completions", {**body, "guided_json": {
        "type": "string", "maxLength": 10 ** 9}}))
    # A wide schema, deep (recursive) references, and a long enum.
    wide = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(2000)}}
    r = smol.post("/v1/chat/completions", {**body, "guided_json": wide})
    assert r.status_code == 200, r.text
    chain = {"$defs": {f"d{i}": {"type": "array", "items": {"$ref": f"#/$defs/d{i + 1}"}}
                       for i in range(200)}}
    chain["$defs"]["d200"] = {"$ref": "#/$defs/d0"}
    chain["$ref"] = "#/$defs/d0"
    r = smol.post("/v1/chat/completions", {**body, "guided_json": chain})
    assert r.status_code in (200, 400), r.text
    r = smol.post("/v1/chat/completions", {**body, "guided_choice": [f"c{i}" for i in range(5000)]})
    assert r.status_code == 200, r.text
    # Thousands of wide rules: mask precomputation stops at its time budget.
    g = "root ::= r0\n" + "".join(f'r{i} ::= [a-z ]* "{i}" r{i + 1}\n' for i in range(3000))
    t1 = time.time()
    r = smol.post("/v1/chat/completions", {**body, "grammar": g + 'r3000 ::= "end"\n'})
    assert r.status_code == 200, r.text
    assert time.time() - t1 < 30
    assert time.time() - t0 < 120
    assert smol.get("/health").status_code == 200
