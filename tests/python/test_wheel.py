"""`pip wheel .` builds a wheel that installs and runs in a fresh virtual environment."""
import subprocess
import sys
import venv
import zipfile

from conftest import ROOT


def run(*cmd, cwd=None):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                       timeout=1200)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def test_wheel_installs_into_a_fresh_venv(smollm2_path, tmp_path):
    wheels = tmp_path / "wheels"
    # The build tools come from this venv (make python installs them), so no download and
    # the build directory of `pip install .` is reused.
    run(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
        "-w", wheels, ROOT)
    (wheel,) = wheels.glob("tessera-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("tessera/__init__.py", "tessera/py.typed", "tessera/_core.pyi", "tessera/llm.py"):
        assert f in names, names
    assert any(n.startswith("tessera/_core.") and n.endswith(".so") for n in names)

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    run(env / "bin" / "pip", "install", "-q", "--no-index", wheel)
    out = run(env / "bin" / "python", "-c",
              "import sys, tessera; from tessera import LLM, SamplingParams; "
              "llm = LLM(sys.argv[1], kv_cache_memory='64MiB', max_model_len=512, threads=2); "
              "o = llm.generate('The capital of France is', "
              "SamplingParams(temperature=0, max_tokens=4))[0].outputs[0]; "
              "print(tessera.__file__); print(o.text)", smollm2_path, cwd=tmp_path)
    path, text = out.splitlines()[:2]
    assert path.startswith(str(env))
    assert "Paris" in text
