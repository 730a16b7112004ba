"""`tessera serve`, `perplexity` and `bench` across processes (mpirun, --tensor-parallel-size):
a TP=2 server answers what one process answers (greedy, at concurrency 4, --tp-exact), and
the faults end the job with a clear error within a bound: a rank killed under load, a rank
that hangs (the --dist-timeout watchdog), and SIGTERM to rank 0 (drain, then every rank
exits 0)."""
import concurrent.futures
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from conftest import STORIES, run_tessera, tessera_bin
from serverlib import Server, free_port, request, wait_healthy

MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="mpirun is not installed "
                                "(apt-get install openmpi-bin libopenmpi-dev)")

MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"]
MPI_ENV = {**os.environ, "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}

PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to", "One day, a big",
           "Tom had a red ball", "The sun was", "Mom said", "They played in the park and"]

# How long a fault may take to end the job, start to finish (measured: well under this).
FAULT_BOUND_S = 30


def rank_pids(mpirun_pid):
    """{rank: pid} of mpirun's children (their OMPI_COMM_WORLD_RANK)."""
    out = {}
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != mpirun_pid:
                continue
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for kv in env:
            if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
                out[int(kv.split(b"=")[1])] = int(d.name)
    return out


class MpiServer:
    """`mpirun -np N·P tessera serve ... --tensor-parallel-size N --pipeline-parallel-size P`
    on a free loopback port."""

    def __init__(self, n, model, *args, log_path, pp=1):
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [MPIRUN, *MPI_FLAGS, "-np", str(n * pp), tessera_bin(), "serve", "-m", str(model),
             "--host", "127.0.0.1", "--port", str(self.port), "-t", "1",
             "--tensor-parallel-size", str(n), "--pipeline-parallel-size", str(pp),
             *map(str, args)],
            stdout=self.log, stderr=subprocess.STDOUT, env=MPI_ENV)
        wait_healthy(self.proc, self.port, 120, self.logs, self.kill)
        self.ranks = rank_pids(self.proc.pid)
        assert sorted(self.ranks) == list(range(n * pp)), self.ranks

    def logs(self):
        self.log.flush()
        return open(self.log_path, errors="replace").read()

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the job did not end within {timeout} s:\n" + self.logs())

    def kill(self):
        for pid in list(self.ranks.values()) if hasattr(self, "ranks") else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        self.log.close()


def complete(port, prompt, max_tokens, timeout=120):
    r = request(port, "POST", "/v1/completions",
                {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                 "ignore_eos": True}, timeout=timeout)
    return r.status_code, (r.json() if r.status_code == 200 else r.text)


def completions(port, prompts, max_tokens, concurrency=4):
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda p: complete(port, p, max_tokens), prompts))


@pytest.fixture
def mpi_server(tmp_path):
    servers = []

    def start(n, model, *args, pp=1):
        s = MpiServer(n, model, *args, log_path=tmp_path / f"mpi{len(servers)}.log", pp=pp)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()


def texts(results):
    out = []
    for status, body in results:
        assert status == 200, body
        out.append(body["choices"][0]["text"])
    return out


@pytest.mark.parametrize("tp,pp", [(2, 1), (1, 2)])
def test_tp2_or_pp2_server_answers_what_one_process_answers(mpi_server, tmp_path, tp, pp):
    # Pipeline stages split no sum: their logits are one process's. --tp-exact: the logits of prompts under 64 tokens are one process's bit for bit (the
    # split sums of the default move them by rounding, enough to part greedy output at a
    # near-tie even in F32). A small pool (preemption) and shared prefixes (the prefix
    # cache) included.
    args = ["--max-model-len", 256, "--kv-cache-memory", "1MiB", "--tp-exact"]
    prompts = PROMPTS + [p + " and then" for p in PROMPTS[:4]]
    one = Server(STORIES, *args, log_path=tmp_path / "one.log")
    try:
        want = texts(completions(one.port, prompts, 96))
    finally:
        assert one.stop() == 0
    tp = mpi_server(tp, STORIES, *args, pp=pp)
    got = texts(completions(tp.port, prompts, 96))
    assert got == want
    assert all(len(t) > 0 for t in got)
    m = request(tp.port, "GET", "/metrics").text
    assert "per rank, 2 ranks" in tp.logs()
    os.kill(tp.ranks[0], signal.SIGTERM)
    assert tp.wait(60) == 0, tp.logs()
    assert "preemptions_total" in m


def test_smollm2_tp2_pp2_server_answers_what_one_process_answers(mpi_server, smollm2,
                                                                 tmp_path):
    # 9 heads and 3 KV heads: 6 and 3 query heads on the two ranks of each of the two
    # stages of 15 layers; quantized weights, --tp-exact.
    args = ["--max-model-len", 256, "--tp-exact"]
    one = Server(smollm2, *args, log_path=tmp_path / "one.log")
    try:
        want = texts(completions(one.port, PROMPTS, 32))
    finally:
        assert one.stop() == 0
    tp = mpi_server(2, smollm2, *args, pp=2)
    assert texts(completions(tp.port, PROMPTS, 32)) == want
    os.kill(tp.ranks[0], signal.SIGTERM)
    assert tp.wait(60) == 0, tp.logs()


def under_load(port, n=16, max_tokens=200):
    """Starts n long completions in the background; returns the pool and their futures."""
    pool = concurrent.futures.ThreadPoolExecutor(n)
    futs = [pool.submit(complete, port, PROMPTS[i % len(PROMPTS)], max_tokens, 60)
            for i in range(n)]
    return pool, futs


def wait_generating(port, timeout=30):
    """Until the server has generated tokens (the steps are running)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in request(port, "GET", "/metrics", timeout=5).text.splitlines():
            if line.startswith("tessera_generation_tokens_total ") and float(line.split()[1]) > 8:
                return
        time.sleep(0.05)
    raise AssertionError("no tokens generated")


def test_killed_rank_ends_the_job_with_a_clear_error(mpi_server):
    s = mpi_server(2, STORIES, "--max-model-len", 512)
    pool, futs = under_load(s.port, max_tokens=400)
    wait_generating(s.port)
    t0 = time.time()
    os.kill(s.ranks[1], signal.SIGKILL)
    rc = s.wait(FAULT_BOUND_S)
    took = time.time() - t0
    pool.shutdown(wait=True, cancel_futures=True)
    log = s.logs()
    assert rc != 0, log
    assert took < FAULT_BOUND_S
    # mpirun names the rank that died; rank 0 says what its SIGTERM means.
    assert "rank 1 with PID" in log and "exited on signal 9" in log, log
    assert "rank 0: SIGTERM came from mpirun, which ends every rank when one has died" in log
    assert "another rank has most likely died or hangs" in log, log
    print(f"killed rank 1: the job ended in {took:.1f} s")


def test_hung_rank_ends_the_job_after_the_dist_timeout(mpi_server):
    s = mpi_server(2, STORIES, "--max-model-len", 512, "--dist-timeout", 3)
    pool, futs = under_load(s.port, max_tokens=400)
    wait_generating(s.port)
    t0 = time.time()
    os.kill(s.ranks[1], signal.SIGSTOP)
    try:
        rc = s.wait(FAULT_BOUND_S)
    finally:
        for pid in s.ranks.values():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    took = time.time() - t0
    pool.shutdown(wait=True, cancel_futures=True)
    log = s.logs()
    assert rc != 0, log
    assert 3 <= took < FAULT_BOUND_S, took
    assert ("rank 0: a forward step across the ranks did not complete within 3 s "
            "(--dist-timeout)") in log, log
    print(f"stopped rank 1: the job ended in {took:.1f} s")


def test_sigterm_to_rank_0_drains_and_every_rank_exits_0(mpi_server):
    s = mpi_server(2, STORIES, "--max-model-len", 512)
    pool, futs = under_load(s.port, max_tokens=200)
    wait_generating(s.port)
    os.kill(s.ranks[0], signal.SIGTERM)
    # New requests are refused while the running ones finish.
    deadline = time.time() + 10
    refused = False
    while time.time() < deadline and not refused:
        try:
            refused = complete(s.port, "The sun was", 4, timeout=10)[0] == 503
        except OSError:
            refused = True  # the listener has already closed
    rc = s.wait(60)
    results = [f.result() for f in futs]
    pool.shutdown()
    log = s.logs()
    assert rc == 0, log
    assert refused
    for status, body in results:
        assert status == 200, body
        assert body["choices"][0]["finish_reason"] == "length"
    assert "server stopped" in log
    assert "error" not in log.lower(), log


def test_sigterm_to_mpirun_ends_the_job(mpi_server):
    # mpirun passes SIGTERM to every rank and kills them odls_base_sigkill_timeout seconds
    # later (1 by default). The workers ignore it (rank 0 tells them when to stop); rank 0
    # says where it came from and starts to drain.
    s = mpi_server(2, STORIES, "--max-model-len", 512)
    pool, futs = under_load(s.port, max_tokens=400)
    wait_generating(s.port)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    s.wait(FAULT_BOUND_S)
    took = time.time() - t0
    pool.shutdown(wait=True)
    log = s.logs()
    assert "rank 0: SIGTERM came from mpirun" in log, log
    assert "SIGTERM: no new requests" in log, log
    assert took < FAULT_BOUND_S
    print(f"SIGTERM to mpirun: the job ended in {took:.1f} s")


def mpirun(n, *args, timeout=300):
    return subprocess.run([MPIRUN, *MPI_FLAGS, "-np", str(n), tessera_bin(), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=MPI_ENV)


def test_perplexity_tp3_prints_what_one_process_prints(smollm2, tmp_path):
    # SmolLM2 Q4_1 with --tp-exact: one process's logits bit for bit (F32 weights are not:
    # their matrix products sum in an order that follows the number of rows a rank holds).
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["Once upon a time there was a little girl named Lily. She loved "
                              "to play in the park with her dog and her friends."] * 8))
    args = ["perplexity", "-m", smollm2, "-f", text, "-c", 48, "-t", 1, "--no-progress"]
    one = run_tessera(*args)
    tp = mpirun(3, *args, "--tensor-parallel-size", 3, "--tp-exact")
    assert tp.returncode == 0, tp.stderr
    assert tp.stdout == one.stdout
    assert tp.stdout.strip().splitlines()[-1].startswith("PPL = ")
    # Only rank 0 writes its lines on stderr.
    assert tp.stderr.count("tokenized ") == 1, tp.stderr


def test_bench_tp2_prints_one_table():
    args = ["bench", "-m", STORIES, "-p", 32, "-n", 16, "-r", 2, "-t", 1, "--no-bandwidth", "-q"]
    one = run_tessera(*args)
    tp = mpirun(2, *args, "--tensor-parallel-size", 2)
    assert tp.returncode == 0, tp.stderr
    # The same table (size and params are rank 0's shard's), and nothing from rank 1.
    def rows(out):
        return [[c.strip() for c in line.split("|")[4:6]] for line in out.splitlines()
                if "|" in line]
    assert rows(tp.stdout) == rows(one.stdout)
    assert rows(tp.stdout)[2:] == [["1", "pp32"], ["1", "tg16"]]
    assert tp.stdout.count("peak RSS") == 1
    assert tp.stderr == ""


def test_speculative_decoding_under_tp_is_refused():
    p = mpirun(2, "serve", "-m", STORIES, "--tensor-parallel-size", 2, "--port", free_port(),
               "--speculative-method", "ngram", timeout=120)
    assert p.returncode != 0
    assert "speculative decoding does not run with tensor parallelism" in p.stderr, p.stderr
    assert p.stderr.count("error:") == 1, p.stderr
