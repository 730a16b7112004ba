"""Bad input raises Python exceptions that name what is wrong; the interpreter survives."""
import pathlib
import signal
import subprocess
import sys

import pytest
from tessera import LLM, SamplingParams, engine_options


@pytest.mark.parametrize("kwargs, field", [
    (dict(temperature=-0.5), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_k=-2), "top_k"),
    (dict(min_p=2.0), "min_p"),
    (dict(presence_penalty=3.0), "presence_penalty"),
    (dict(frequency_penalty=-3.0), "frequency_penalty"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(n=0), "n"),
    (dict(n=1000), "n"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(max_tokens=1.5), "max_tokens"),
    (dict(seed="x"), "seed"),
    (dict(seed=2**80), "seed"),
    (dict(stop=5), "stop"),
    (dict(stop=["a", 3]), "stop"),
    (dict(stop_token_ids=[-1]), "stop_token_ids"),
    (dict(stop_token_ids="x"), "stop_token_ids"),
    (dict(ignore_eos="yes"), "ignore_eos"),
    (dict(logprobs=21), "logprobs"),
    (dict(logprobs=True), "logprobs"),
    (dict(logit_bias={1: 500}), "logit_bias"),
    (dict(logit_bias={"a": 1}), "logit_bias"),
    (dict(logit_bias=[1]), "logit_bias"),
])
def test_bad_sampling_params_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**kwargs)


def test_unknown_sampling_param_is_a_type_error():
    with pytest.raises(TypeError, match="best_of"):
        SamplingParams(best_of=2)


def test_token_ids_are_checked_against_the_vocabulary(llm):
    for p in (SamplingParams(logit_bias={49152: 1.0}), SamplingParams(stop_token_ids=[10**6])):
        with pytest.raises(ValueError, match="logit_bias|stop_token_ids"):
            llm.generate("Hi", p)


def test_bad_prompts(llm):
    p = SamplingParams(max_tokens=4)
    with pytest.raises(ValueError, match="prompt 1: .*empty"):
        llm.generate(["Hi", ""], p)
    with pytest.raises(ValueError, match="prompt 0: .*empty"):
        llm.generate([[]], p)
    with pytest.raises(ValueError, match="prompt 1: token id 49152 is outside"):
        llm.generate([[1, 2], [3, 49152]], p)
    with pytest.raises(ValueError, match="prompt 0: token id -1"):
        llm.generate([[-1]], p)
    with pytest.raises(ValueError, match="prompt 0: token ids must be integers"):
        llm.generate([[1, 2.5]], p)
    with pytest.raises(ValueError, match="prompt 0: .*prompt_token_ids"):
        llm.generate({"text": "hi"}, p)
    with pytest.raises(TypeError, match="prompt 0"):
        llm.generate([3.5], p)
    with pytest.raises(ValueError, match="max_model_len"):
        llm.generate([[1] * 9000], p)
    with pytest.raises(ValueError, match="2 entries for 3 prompts"):
        llm.generate(["a", "b", "c"], [p, p])
    with pytest.raises(TypeError, match="sampling_params"):
        llm.generate("Hi", {"temperature": 0})
    # Nothing was left running by the refused calls.
    assert llm.stats()["num_running"] == 0 and llm.stats()["num_waiting"] == 0
    assert llm.generate("Hi", p)[0].outputs[0].token_ids


def test_engine_options(smollm2_path, tmp_path):
    assert {"threads", "kv_cache_memory", "quantization", "max_num_seqs", "max_model_len",
            "kv_cache_dtype", "enable_prefix_caching"} <= set(engine_options())
    with pytest.raises(TypeError, match="'tensor_parallel_size'"):
        LLM(smollm2_path, tensor_parallel_size=2)
    for kwargs, name in [(dict(threads=-1), "threads"), (dict(max_num_seqs=0), "max_num_seqs"),
                         (dict(kv_cache_memory="lots"), "kv_cache_memory"),
                         (dict(kv_cache_dtype="fp8"), "kv_cache_dtype"),
                         (dict(enable_prefix_caching="no"), "enable_prefix_caching"),
                         (dict(max_model_len=0), "max_model_len"),
                         (dict(load_format="onnx"), "load_format"),
                         (dict(quantization="q3_x"), "q3_x")]:
        with pytest.raises(ValueError, match=name):
            LLM(smollm2_path, **kwargs)
    with pytest.raises(ValueError, match="KV cache"):
        LLM(smollm2_path, kv_cache_memory="1MiB")
    missing = tmp_path / "nope.gguf"
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        LLM(missing)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError, match="junk.gguf"):
        LLM(junk)


def test_other_option_values_load(smollm2_path):
    llm = LLM(str(smollm2_path), kv_cache_memory=64 << 20, kv_cache_dtype="f32",
              enable_prefix_caching=False, max_num_seqs=4, max_num_batched_tokens=64,
              block_size=32, max_model_len=1024, threads=None, quantization=None)
    out = llm.generate("The capital of France is", SamplingParams(temperature=0, max_tokens=4))
    assert len(out[0].outputs[0].token_ids) == 4


CTRL_C_SCRIPT = r"""
import signal, sys, time
# Ctrl-C as in a terminal: a job started in the background of a non-interactive shell
# (a CI runner's) inherits SIGINT ignored, and Python then installs no handler for it.
signal.signal(signal.SIGINT, signal.default_int_handler)
from tessera import LLM, SamplingParams
llm = LLM(sys.argv[1], kv_cache_memory="256MiB", threads=2)
print("ready", flush=True)
try:
    llm.generate(["Once upon a time"] * 4,
                 SamplingParams(max_tokens=None, ignore_eos=True, temperature=0))
    print("finished?!", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
deadline = time.monotonic() + 10
while llm.stats()["num_running"] + llm.stats()["num_waiting"] and time.monotonic() < deadline:
    time.sleep(0.02)
s = llm.stats()
print("idle", s["num_running"], s["num_waiting"], s["kv_blocks_used"], flush=True)
out = llm.generate("Hello", SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))
print("after", len(out[0].outputs[0].token_ids), flush=True)
"""


def test_ctrl_c_interrupts_generate_cleanly(smollm2_path, tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(smollm2_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        import time
        time.sleep(1.5)  # generate() is running (4 x 8000 tokens take minutes)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert out.split("\n")[:3] == ["interrupted", "idle 0 0 0", "after 4"], (out, err)
