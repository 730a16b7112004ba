"""The same model code on both backends: `--backend ref` (the scalar references, one
thread) against `--backend cpu`.

The cpu backend's scalar level (TESSERA_SIMD=scalar) runs the same arithmetic as ref in a
different structure (thread pool, tiles, panels, scratch reuse): its tokens and logits must
be identical. At the SIMD levels the per-type dots sum in another order (bounded op by op
in tests/unit/test_backend_ops.cpp), which a long greedy run of a quantized model may
amplify into a different token, so there only the f32 model is compared by its tokens.
"""
import json
import os
import subprocess

import pytest
from conftest import STORIES, run_tessera, tessera_bin

PROMPT = "Once upon a time"


def run(model, backend, simd=None, n=64):
    env = dict(os.environ)
    if simd:
        env["TESSERA_SIMD"] = simd
    p = subprocess.run([tessera_bin(), "run", "-m", str(model), "-p", PROMPT, "-n", str(n),
                        "--temp", "0", "-t", "2", "--backend", backend],
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout


def logits(model, backend, simd=None):
    env = dict(os.environ)
    if simd:
        env["TESSERA_SIMD"] = simd
    p = subprocess.run([tessera_bin(), "logits", "-m", str(model), "-p", PROMPT + ", there was",
                        "--backend", backend, "--no-progress"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["logits"]


def test_stories_greedy_identical_on_ref():
    assert run(STORIES, "ref") == run(STORIES, "cpu")


@pytest.mark.parametrize("model", ["stories", "smollm2"])
def test_scalar_cpu_equals_ref_bit_for_bit(model, smollm2):
    path = STORIES if model == "stories" else smollm2
    assert run(path, "ref") == run(path, "cpu", simd="scalar")
    assert logits(path, "ref") == logits(path, "cpu", simd="scalar")


def test_unknown_backend_is_refused():
    p = run_tessera("run", "-m", STORIES, "-n", 4, "--backend", "gpu", check=False)
    assert p.returncode != 0
    assert "backend" in p.stderr
