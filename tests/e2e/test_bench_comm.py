"""`tessera bench-comm` under mpirun (one JSON object on rank 0's stdout: every collective at
every size, slowest-rank medians) and its bad flags; `tessera run --json` under tensor
parallelism counts the model's collectives (`communication`): two all-reduces per layer
per forward pass, each of the pass's tokens times the embedding size in floats."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import STORIES, run_tessera, tessera_bin

MPIRUN = shutil.which("mpirun")
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"]
MPI_ENV = {**os.environ, "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}
mpi = pytest.mark.skipif(MPIRUN is None, reason="mpirun is not installed "
                         "(apt-get install openmpi-bin libopenmpi-dev)")


def mpirun(*args, timeout=300):
    p = subprocess.run([MPIRUN, *MPI_FLAGS, "-np", "2", tessera_bin(), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, env=MPI_ENV)
    if "built without MPI" in p.stderr:
        pytest.skip("this tessera was built without MPI")
    assert p.returncode == 0, p.stderr
    return p


@mpi
def test_bench_comm_reports_every_collective_and_size():
    p = mpirun("bench-comm", "--max-bytes", 4096, "--factor", 8, "--reps", 3)
    j = json.loads(p.stdout)
    assert j["world_size"] == 2
    got = [(r["collective"], r["bytes"]) for r in j["results"]]
    assert got == [(op, s) for op in ("all_reduce_sum", "all_gather", "broadcast")
                   for s in (4, 32, 256, 2048)]
    for r in j["results"]:
        assert r["repetitions"] == 3
        assert 0 < r["min_us"] <= r["median_us"], r
        # Two ranks: an all-reduce's link carries 2(T-1)/T = 1 times the buffer, an
        # all-gather (T-1) = 1 times each rank's part, a broadcast the buffer.
        assert r["bus_bytes"] == r["bytes"], r
        assert r["bus_bandwidth_GBps"] == pytest.approx(r["bytes"] / r["median_us"] / 1e3)
    assert "median us" in p.stderr  # the table


@pytest.mark.parametrize("flags, message", [
    (["--min-bytes", 100, "--max-bytes", 10], "--min-bytes is larger than --max-bytes"),
    (["--ops", "all_reduce_sum,scatter"], "unknown collective 'scatter'"),
    (["--factor", 1], "--factor"),
    (["--reps", 0], "--reps"),
])
def test_bench_comm_bad_flags(flags, message):
    p = run_tessera("bench-comm", *flags, check=False)
    assert p.returncode != 0
    assert p.stdout == ""
    assert message in p.stderr


@mpi
def test_run_counts_the_models_collectives():
    n = 16
    p = mpirun("run", "-m", STORIES, "-p", "Once upon a time", "-n", n, "--temp", 0,
               "--ignore-eos", "-t", 1, "--json", "--tensor-parallel-size", 2)
    j = json.loads(p.stdout)
    c = j["communication"]
    layers, embedding, vocab = 5, 64, 512  # stories260K
    n_prompt, n_gen = len(j["prompt_tokens"]), len(j["tokens"])
    assert n_gen == n
    # One pass over the prompt, then one per generated token but the last.
    passes = 1 + n_gen - 1
    tokens = n_prompt + n_gen - 1
    # Per pass: two all-reduces per layer over every token's activations, and one all-gather
    # of the one logits row the pass returns, of which rank 0 sends its vocab / 2 entries.
    assert c["prompt_calls"] + c["generation_calls"] == (2 * layers + 1) * passes
    assert (c["prompt_bytes"] + c["generation_bytes"] ==
            2 * layers * tokens * embedding * 4 + passes * vocab // 2 * 4)
    assert c["prompt_calls"] >= 2 * layers + 1  # the prompt's pass is the prompt's
    assert c["prompt_seconds"] >= 0 and c["generation_seconds"] >= 0
    assert "communication (rank 0): prompt" in p.stderr
    # One process reports no communication.
    one = json.loads(run_tessera("run", "-m", STORIES, "-p", "Once upon a time", "-n", n,
                                 "--temp", 0, "--ignore-eos", "-t", 1, "--json").stdout)
    assert "communication" not in one
