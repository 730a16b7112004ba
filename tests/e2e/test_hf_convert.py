"""Hugging Face directories: `tessera` on a tiny random HF Llama checkpoint (written by
scripts/make_tiny_hf_llama.py) agrees with the GGUF files `tessera convert` makes from it,
and, when a llama.cpp build is given (LLAMA_CPP_BIN=dir, opt-in),
llama.cpp on those files agrees with Tessera on the directory: same greedy text, same
perplexity to 0.05%. Also load-time quantization and dummy weights through the CLI."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import GPL3, ROOT, parse_ppl, run_tessera, tessera_bin

# A llama.cpp build to cross-check converted files with: opt-in (LLAMA_CPP_BIN=dir with
# llama-perplexity and llama-simple), since it is a reference tool outside the project.
LLAMA_BIN = pathlib.Path(os.environ.get("LLAMA_CPP_BIN", "/nonexistent"))
PROMPT = "Once upon a time there was"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_llama")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_hf_llama.py"), str(d),
                    "--dtype", "F16"], check=True)
    return d


def ppl(model, *extra):
    return parse_ppl(run_tessera("perplexity", "-m", model, "-f", GPL3, "-c", 128, "-b", 128,
                                 "-t", 2, *extra).stdout)


def greedy(model, *extra):
    """Prompt + 24 greedy tokens as bytes (a random model's text is not valid UTF-8)."""
    p = subprocess.run([tessera_bin(), "run", "-m", str(model), "-p", PROMPT, "-n", "24",
                        "--temp", "0", *map(str, extra)], capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def test_directory_matches_converted_gguf(tiny, tmp_path):
    out = tmp_path / "tiny-f16.gguf"
    p = run_tessera("convert", "-m", tiny, "-o", out, "--type", "f16")
    assert "4 Q/K permuted" in p.stderr
    assert greedy(tiny) == greedy(out)
    a, b = ppl(tiny), ppl(out)
    assert abs(a - b) / a < 1e-4, (a, b)


def test_load_time_quantization_matches_converted_q8_0(tiny, tmp_path):
    out = tmp_path / "tiny-q8_0.gguf"
    run_tessera("convert", "-m", tiny, "-o", out, "--type", "q8_0")
    a, b = ppl(tiny, "--quantization", "q8_0"), ppl(out)
    assert abs(a - b) / a < 1e-3, (a, b)
    assert abs(a - ppl(tiny)) / a < 0.02


@pytest.mark.parametrize("arch", ["qwen3", "qwen3moe", "mixtral"])
def test_dummy_weights_for_other_shapes(arch):
    """Dense with Q/K norms and both mixture-of-experts layouts build from a config alone;
    the seed fixes the weights, and a different seed gives a different model (sampled at
    temperature 1 with a fixed sampling seed: the tiny vocabulary tokenizes any prompt to
    <unk>, and with tied embeddings greedy would echo it whatever the weights)."""
    config = ROOT / "tests" / "data" / "archs" / "hf" / arch / "config.json"
    def run(seed):
        p = run_tessera("run", "-m", config, "--load-format", "dummy", "--dummy-seed", seed,
                        "-p", "t1 t2 t3", "-n", 24, "--temp", 1, "--seed", 1, "--ignore-eos",
                        "--json")
        return json.loads(p.stdout)["tokens"]
    a, b, c = run(5), run(5), run(6)
    assert a == b and len(a) == 24
    assert a != c


def test_dummy_weights_from_config(tiny):
    out1 = greedy(tiny / "config.json", "--load-format", "dummy", "--dummy-seed", 3)
    out2 = greedy(tiny / "config.json", "--load-format", "dummy", "--dummy-seed", 3)
    assert out1 == out2 and out1.startswith(PROMPT.encode())
    p = run_tessera("info", "-m", tiny, "--load-format", "dummy", check=False)
    assert p.returncode != 0  # info has no --load-format: a usage error, not a crash


@pytest.mark.skipif(not (LLAMA_BIN / "llama-perplexity").exists(), reason="no llama.cpp build")
@pytest.mark.parametrize("type_", ["f16", "q8_0"])
def test_llama_cpp_runs_converted_file(tiny, tmp_path, type_):
    out = tmp_path / f"tiny-{type_}.gguf"
    run_tessera("convert", "-m", tiny, "-o", out, "--type", type_)
    r = subprocess.run([str(LLAMA_BIN / "llama-perplexity"), "-m", str(out), "-f", str(GPL3),
                        "-c", "128", "-b", "128", "-t", "2"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    line = [l for l in r.stderr.splitlines() + r.stdout.splitlines() if "Final estimate" in l][0]
    theirs = float(line.split("PPL =")[1].split()[0])
    ours = ppl(tiny, *(["--quantization", "q8_0"] if type_ == "q8_0" else []))
    assert abs(theirs - ours) / ours < 5e-4, (theirs, ours)
    if type_ == "f16":
        r = subprocess.run([str(LLAMA_BIN / "llama-simple"), "-m", str(out), "-n", "24", PROMPT],
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.replace(b"<|begin_of_text|>", b"").strip() == greedy(tiny).strip()


def test_info_lists_architectures():
    """`tessera info --archs` needs no model: every architecture with its HF classes and the
    shapes dummy weights cover; without --archs, -m stays required."""
    out = run_tessera("info", "--archs").stdout
    blocks, name = {}, None
    for line in out.splitlines():
        if line and not line[0].isspace():
            name = line.strip()
            blocks[name] = ""
        else:
            blocks[name] += line.strip() + "\n"
    for arch in ("llama", "qwen2", "qwen3", "qwen3moe", "gemma3", "phi3", "glm4", "chatglm",
                 "baichuan", "internlm2", "qwen2moe"):
        assert arch in blocks, out
    assert "HF directory: Qwen3MoeForCausalLM" in blocks["qwen3moe"]
    assert "dummy:        Qwen3MoeForCausalLM" in blocks["qwen3moe"]
    assert "dummy:        no" in blocks["gemma3"]
    p = run_tessera("info", check=False)
    assert p.returncode != 0 and "--model" in p.stderr
