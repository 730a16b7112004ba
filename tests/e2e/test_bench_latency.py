"""`tessera bench` latency mode and bandwidth probe on stories260K (tiny sizes)."""
import json

from conftest import STORIES, run_tessera


def test_bench_latency_json():
    p = run_tessera("bench", "-m", STORIES, "-p", "16", "-n", "8", "-r", "2", "-t", "2",
                    "--json", "-q")
    j = json.loads(p.stdout)
    assert j["arch"] == "llama"
    assert j["n_threads"] == 2
    assert j["model_n_params"] == 292800
    assert j["model_size"] == 292800 * 4
    assert j["decode_bytes_per_token"] == 1037568
    assert [t["name"] for t in j["tests"]] == ["pp16", "tg8"]
    for t in j["tests"]:
        assert len(t["samples_ts"]) == 2 and len(t["samples_ns"]) == 2
        assert t["avg_ts"] > 0 and t["stddev_ts"] >= 0
    assert (j["tests"][0]["n_prompt"], j["tests"][0]["n_gen"]) == (16, 0)
    assert (j["tests"][1]["n_prompt"], j["tests"][1]["n_gen"]) == (0, 8)
    assert j["bandwidth"]["best_gbs"] > 0
    assert j["roofline"]["max_tg_ts"] > 0
    assert 0 < j["tests"][1]["roofline_fraction"]
    assert j["peak_rss_bytes"] > 0


def test_bench_latency_table_with_given_bandwidth():
    p = run_tessera("bench", "-m", STORIES, "-p", "8", "-n", "4", "-r", "1", "-t", "1",
                    "--bandwidth-gbs", "10", "-q")
    out = p.stdout
    assert "| model" in out and "t/s" in out
    assert "pp8" in out and "tg4" in out
    assert "decode roofline" in out and "peak RSS" in out


def test_bench_bandwidth_subcommand():
    p = run_tessera("bench", "bandwidth", "-t", "1", "--size-mib", "64", "--iterations", "2",
                    "--json")
    j = json.loads(p.stdout)
    assert j["n_threads"] == 1 and j["array_bytes"] == 64 << 20
    assert j["best_gbs"] > 0


def test_bench_needs_a_model():
    p = run_tessera("bench", check=False)
    assert p.returncode != 0
    assert "-m MODEL" in p.stderr
