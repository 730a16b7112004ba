#!/usr/bin/env python3
"""Peak resident memory of each rank under tensor and pipeline parallelism: `tessera run`
(a short greedy generation) under `mpirun -np TP*PP`, every rank wrapped in
`/usr/bin/time -f %M` (its VmHWM), against one process.

  bench/parallel_memory.py -m MODEL [--configs 1x1 2x1 4x1 1x2 1x4 2x2] [-c 4096]

TPxPP per configuration. Prints, per configuration, every rank's peak RSS in MiB and the
largest, with the model file's size and the weight bytes one process reports for scale."""
import argparse
import os
import pathlib
import re
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("TESSERA_BIN", str(ROOT / "build" / "tessera"))
MPI = [shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "--oversubscribe"]
ENV = {**os.environ, "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}
MARK = "peak-rss-kib "


def peaks(model, tp, pp, ctx):
    n = tp * pp
    timed = ["/usr/bin/time", "-f", MARK + "%M", BIN]
    args = ["run", "-m", model, "-p", "Hello", "-n", "4", "--temp", "0", "-t", "1", "-c",
            str(ctx)]
    cmd = ([*MPI, "-np", str(n), *timed, *args, "--tensor-parallel-size", str(tp),
            "--pipeline-parallel-size", str(pp)] if n > 1 else [*timed, *args])
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    kib = [int(m) for m in re.findall(MARK + r"(\d+)", p.stderr)]
    if len(kib) != n:
        raise SystemExit(f"expected {n} peaks, got {kib}:\n{p.stderr}")
    return kib  # in order of exit, not of rank


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--configs", nargs="+", default=["1x1", "2x1", "4x1", "1x2", "1x4", "2x2"])
    ap.add_argument("-c", "--ctx", type=int, default=4096, help="context (KV cache) size")
    a = ap.parse_args()
    size = os.path.getsize(a.model) / 2**20
    print(f"{a.model}: {size:.0f} MiB file, context {a.ctx}")
    for c in a.configs:
        tp, pp = map(int, c.split("x"))
        kib = sorted(peaks(a.model, tp, pp, a.ctx))
        mib = " ".join(f"{k / 1024:.0f}" for k in kib)
        print(f"TP={tp} PP={pp}: peak RSS per rank (MiB, sorted) {mib}; max {kib[-1] / 1024:.0f}",
              flush=True)


if __name__ == "__main__":
    main()
