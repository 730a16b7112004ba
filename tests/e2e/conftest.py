"""Shared fixtures for end-to-end tests of the `tessera` binary."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
REF = DATA / "reference"
STORIES = DATA / "stories260K-f32.gguf"
SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct-Q4_1.gguf"
GEMMA3 = pathlib.Path(os.environ.get("TESSERA_GEMMA3",
                                     ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"))
MINILM = ROOT / "models" / "all-MiniLM-L6-v2"
ENCODERS = DATA / "encoders"
GPL3 = pathlib.Path("/usr/share/common-licenses/GPL-3")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "checked: the fast subset that scripts/run_tests.sh also runs against the "
        "sanitizer builds (ASan/UBSan and TSan)")


def tessera_bin():
    return os.environ.get("TESSERA_BIN", str(ROOT / "build" / "tessera"))


def run_tessera(*args, check=True, timeout=600):
    """Runs the CLI; returns the CompletedProcess (text mode)."""
    p = subprocess.run([tessera_bin(), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"tessera {' '.join(map(str, args))} failed ({p.returncode}):\n"
                             f"{p.stderr}")
    return p


def parse_ppl(stdout):
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("PPL = "), last
    return float(last.split("=")[1])


def load_ref(name):
    return json.loads((REF / name).read_text())


@pytest.fixture(scope="session")
def smollm2():
    if not SMOLLM2.exists():
        pytest.fail(f"{SMOLLM2} is missing: run `make model`")
    return SMOLLM2


@pytest.fixture(scope="session")
def gemma3():
    if not GEMMA3.exists():
        pytest.fail(f"{GEMMA3} is missing: run `scripts/fetch_model.sh gemma3` "
                    "(or point TESSERA_GEMMA3 at the file)")
    return GEMMA3


@pytest.fixture(scope="session")
def minilm():
    if not (MINILM / "model.safetensors").exists():
        pytest.fail(f"{MINILM} is missing: run `make model`")
    return MINILM
