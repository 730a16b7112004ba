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


def test_convert_dummy_config_to_gguf_then_bench(tmp_path):
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": 320, "tie_word_embeddings": True, "max_position_embeddings": 256}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "synth-q8_0.gguf"
    # A config.json alone: no tokenizer files, a byte-level vocabulary is made up.
    run_tessera("convert", "--load-format", "dummy", "-m", tmp_path / "config.json",
                "--type", "q8_0", "-o", out)
    j = json.loads(run_tessera("bench", "-m", out, "-p", "8", "-n", "4", "-r", "1",
                               "--no-bandwidth", "--json", "-q").stdout)
    assert j["weight_type"] == "Q8_0"
    # 2 layers * (q 64*64 + k,v 2 * 64*32 + o 64*64 + gate,up,down 3 * 64*128) weights in
    # Q8_0 (34 bytes per 32), the tied 320 x 64 output and one embedding row.
    per_layer = (4096 + 2 * 2048 + 4096 + 3 * 8192) // 32 * 34
    assert j["decode_bytes_per_token"] == 2 * per_layer + 320 * 64 // 32 * 34 + 68
    assert "roofline" not in j
