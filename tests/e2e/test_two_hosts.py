"""Tensor parallelism across two hosts: two network namespaces joined by a veth pair
(scripts/netns_pair.sh), one Open MPI daemon and one rank in each, the ranks talking over
Open MPI's TCP transport on the veth alone. `tessera run --tensor-parallel-size 2` then prints
exactly what one process prints, and the veth carried at least the activations the split
must exchange.

mpirun runs inside the first namespace with a hostfile naming both addresses: it finds the
first to be its own and starts the second host's daemon through the rsh agent
(`netns_pair.sh agent`, ssh's stand-in: `ip netns exec` into the namespace with that
address). With tc's netem in the kernel each direction of the veth gets a 0.2 ms delay
(a datacenter link); without it the link has none (the outputs must match either way).

Needs root, iproute2 and mpirun; skips, saying which is missing, otherwise. Everything made
here (namespaces, veth, hostfile) is removed afterwards, also when a check fails."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, STORIES, run_tessera, tessera_bin

MPIRUN = shutil.which("mpirun")
IP = shutil.which("ip")
NETNS = ROOT / "scripts" / "netns_pair.sh"
SYNTH_1B = ROOT / "models" / "synth-Llama-3.2-1B-q4_0.gguf"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(IP is None, reason="iproute2's ip is not installed"),
    pytest.mark.skipif(MPIRUN is None, reason="mpirun is not installed "
                       "(apt-get install openmpi-bin libopenmpi-dev)"),
]

NAME = f"ts{os.getpid() % 100000}"  # interface names NAME-a0 stay under 15 characters
SUBNET = f"10.233.{os.getpid() % 250 + 1}"


def netns(*args, check=True):
    return subprocess.run(["sh", str(NETNS), *args], capture_output=True, text=True,
                          check=check, timeout=60)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """The two "hosts"; yields whether the link has netem's delay."""
    delayed = True
    try:
        p = netns("up", NAME, SUBNET, "0.2", check=False)
        if p.returncode == 3:  # no netem in this kernel: the same link without the delay
            delayed = False
            netns("down", NAME)
            p = netns("up", NAME, SUBNET, check=False)
        if p.returncode != 0:
            pytest.skip(f"cannot make network namespaces here: {p.stderr.strip()}")
        hostfile = tmp_path_factory.mktemp("hosts") / "hostfile"
        hostfile.write_text(f"{SUBNET}.1 slots=1\n{SUBNET}.2 slots=1\n")
        yield {"hostfile": hostfile, "delayed": delayed}
    finally:
        netns("down", NAME, check=False)
    assert f"{NAME}-a" not in subprocess.run([IP, "netns", "list"], capture_output=True,
                                             text=True).stdout


def mpirun_two_hosts(hosts, *args, timeout=900):
    argv = [
        # --bind-to none: both "hosts" are this machine's cores, and each would pin its rank
        # to core 0.
        IP, "netns", "exec", f"{NAME}-a", MPIRUN, "--allow-run-as-root", "--bind-to", "none",
        "--hostfile", str(hosts["hostfile"]), "-np", "2", "--mca", "plm_rsh_agent", f"sh {NETNS} agent",
        "--mca", "oob_tcp_if_include", f"{SUBNET}.0/24", "--mca", "btl", "tcp,self",
        "--mca", "btl_tcp_if_include", f"{SUBNET}.0/24", tessera_bin(), *map(str, args)
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def veth_tx_bytes(side):
    """Bytes the veth end in namespace NAME-side has sent."""
    p = subprocess.run([IP, "-n", f"{NAME}-{side}", "-s", "-j", "link", "show", f"{NAME}-{side}0"],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)[0]["stats64"]["tx"]["bytes"]


def ok(p):
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_ranks_run_on_two_hosts(hosts):
    script = "ip -o -4 addr show | grep -o ' inet [0-9.]*/24' | grep -v 127.0.0"
    p = subprocess.run([IP, "netns", "exec", f"{NAME}-a", MPIRUN, "--allow-run-as-root",
                        "--hostfile", str(hosts["hostfile"]), "-np", "2", "--mca",
                        "plm_rsh_agent", f"sh {NETNS} agent", "--mca", "oob_tcp_if_include",
                        f"{SUBNET}.0/24", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    # Each rank's namespace has its own address, and no other.
    addresses = sorted(line.split()[1] for line in ok(p).splitlines())
    assert addresses == [f"{SUBNET}.1/24", f"{SUBNET}.2/24"], p.stdout


def test_stories260k_tp2_across_hosts_prints_what_one_process_prints(hosts):
    for prompt in ([], ["-p", "Once upon a time"]):
        args = ["run", "-m", STORIES, "-n", 120, "--temp", 0, "-t", 1, "--tp-exact", *prompt]
        expected = ok(run_tessera(*args))
        assert ok(mpirun_two_hosts(hosts, *args, "--tensor-parallel-size", 2)) == expected


def test_1b_tp2_across_hosts_matches_and_crosses_the_veth(hosts):
    if not SYNTH_1B.exists():
        pytest.skip(f"{SYNTH_1B} is missing: bench/make_synth_models.sh makes it")
    args = ["run", "-m", SYNTH_1B, "-p", "The capital of France is", "-n", 24, "--temp", 0,
            "--ignore-eos", "-t", 1, "--tp-exact", "--json"]
    expected = json.loads(ok(run_tessera(*args)))
    before = veth_tx_bytes("a"), veth_tx_bytes("b")
    p = mpirun_two_hosts(hosts, *args, "--tensor-parallel-size", 2)
    after = veth_tx_bytes("a"), veth_tx_bytes("b")
    got = json.loads(ok(p))
    assert got["tokens"] == expected["tokens"]
    assert got["text"] == expected["text"]
    # Every token the model runs (the prompt's and each generated one but the last) needs,
    # per layer, at least `embedding` floats from each rank to the other: with --tp-exact
    # each rank contributes half of the attention and feed-forward outputs (embedding/2
    # floats each) to two all-gathers; without it two all-reduces carry more.
    layers, embedding = 16, 2048
    n_tokens = len(expected["prompt_tokens"]) + len(expected["tokens"]) - 1
    least = n_tokens * layers * embedding * 4
    for side, (b, a) in zip("ab", zip(before, after)):
        assert a - b >= least, f"{NAME}-{side}0 sent {a - b} bytes, fewer than {least}"
