"""Bad input to the CLI ends with a clear message and a non-zero exit, never a crash."""
import struct

import pytest

from conftest import STORIES, run_tessera


def gguf_bytes(kv):
    """A minimal GGUF v3 file with string metadata `kv` and no tensors."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    for k, v in kv.items():
        out += s(k) + struct.pack("<I", 8) + s(v)
    return out


def assert_clean_failure(p, *needles):
    assert 0 < p.returncode < 128, (p.returncode, p.stderr)  # no signal, no abort
    assert p.stdout == "" or "error" not in p.stdout
    for n in needles:
        assert n in p.stderr, p.stderr


def test_missing_model_file(tmp_path):
    p = run_tessera("run", "-m", tmp_path / "nope.gguf", "-n", 1, check=False)
    assert_clean_failure(p, "nope.gguf")


def test_not_a_gguf_file(tmp_path):
    f = tmp_path / "text.gguf"
    f.write_text("hello, this is not a model")
    p = run_tessera("info", "-m", f, check=False)
    assert_clean_failure(p, "error:")


def test_truncated_model(tmp_path):
    f = tmp_path / "cut.gguf"
    f.write_bytes(STORIES.read_bytes()[:100_000])
    p = run_tessera("run", "-m", f, "-n", 1, check=False)
    assert_clean_failure(p, "error:")


def test_unknown_architecture(tmp_path):
    f = tmp_path / "arch.gguf"
    f.write_bytes(gguf_bytes({"general.architecture": "perceiver9000"}))
    p = run_tessera("info", "-m", f, check=False)
    assert_clean_failure(p, "unsupported architecture", "perceiver9000")


@pytest.mark.parametrize("args", [
    ("run", "-m", STORIES, "-n", "-5"),
    ("run", "-m", STORIES, "--temp", "abc"),
    ("run", "-m", STORIES, "--top-p", "3"),
    ("run", "--bogus-flag"),
    ("perplexity", "-m", STORIES),
    ("perplexity", "-m", STORIES, "-f", STORIES, "--chunks", "0"),
    ("tokenize", "-m", STORIES),
    ("frobnicate",),
])
def test_bad_flags(args):
    p = run_tessera(*args, check=False)
    assert_clean_failure(p)
    assert p.stderr.strip()


def test_prompt_longer_than_context():
    p = run_tessera("run", "-m", STORIES, "-p", "Once upon a time " * 50, "-c", 16, "-n", 4,
                    check=False)
    assert_clean_failure(p, "context")


def test_perplexity_text_shorter_than_a_chunk(tmp_path):
    f = tmp_path / "short.txt"
    f.write_text("One short line.")
    p = run_tessera("perplexity", "-m", STORIES, "-f", f, "-c", 128, check=False)
    assert_clean_failure(p, "chunk")
