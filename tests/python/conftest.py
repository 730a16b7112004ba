"""Fixtures of the Python package's tests: the installed `tessera` package (make python)
driving SmolLM2-135M in-process."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct-Q4_1.gguf"
STORIES = ROOT / "tests" / "data" / "stories260K-f32.gguf"


def tessera_bin():
    return os.environ.get("TESSERA_BIN", str(ROOT / "build" / "tessera"))


@pytest.fixture(scope="session")
def smollm2_path():
    if not SMOLLM2.exists():
        pytest.fail(f"{SMOLLM2} is missing: run `make model`")
    return SMOLLM2


@pytest.fixture(scope="session")
def llm(smollm2_path):
    from tessera import LLM
    return LLM(smollm2_path, kv_cache_memory="512MiB", threads=2)
