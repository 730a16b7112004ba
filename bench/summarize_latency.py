#!/usr/bin/env python3
"""Markdown table from a bench/compare_llama_bench.sh output directory."""
import json
import pathlib
import re
import sys


def max_rss_kib(stderr_path):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr_path.read_text())
    return int(m.group(1)) if m else 0


def main(out_dir):
    d = pathlib.Path(out_dir)
    print("| model | test | Tessera t/s | llama-bench t/s | Tessera / llama |")
    print("| --- | --- | ---: | ---: | ---: |")
    rss_rows, roof_rows = [], []
    for tj in sorted(d.glob("*.tessera.json")):
        name = tj.name[: -len(".tessera.json")]
        try:
            t = json.loads(tj.read_text())
        except json.JSONDecodeError:  # still running, or failed
            continue
        lpath = d / f"{name}.llama.json"
        try:
            llama = json.loads(lpath.read_text())
        except (OSError, json.JSONDecodeError):
            llama = []
        for test in t["tests"]:
            ref = next((r for r in llama if r["n_prompt"] == test["n_prompt"]
                        and r["n_gen"] == test["n_gen"]), None)
            ours = f"{test['avg_ts']:.2f} ± {test['stddev_ts']:.2f}"
            theirs = f"{ref['avg_ts']:.2f} ± {ref['stddev_ts']:.2f}" if ref else "-"
            ratio = f"{test['avg_ts'] / ref['avg_ts']:.2f}" if ref else "-"
            print(f"| {name} | {test['name']} | {ours} | {theirs} | {ratio} |")
            if "roofline_fraction" in test:
                roof_rows.append((name, test["name"], t["decode_bytes_per_token"],
                                  t["roofline"]["bandwidth_gbs"], t["roofline"]["max_tg_ts"],
                                  test["avg_ts"], test["roofline_fraction"]))
        rss_rows.append((name, t["peak_rss_bytes"] / 2**20,
                         max_rss_kib(d / f"{name}.tessera.stderr") / 1024,
                         max_rss_kib(d / f"{name}.llama.stderr") / 1024))
    print()
    print("| model | test | weight bytes / token | bandwidth GB/s | roofline t/s | Tessera t/s | fraction |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for n, tn, b, bw, mx, ts, f in roof_rows:
        print(f"| {n} | {tn} | {b / 2**20:.1f} MiB | {bw:.2f} | {mx:.2f} | {ts:.2f} | {100 * f:.0f}% |")
    print()
    print("| model | Tessera VmHWM (MiB) | Tessera time -v max RSS (MiB) | llama-bench time -v max RSS (MiB) |")
    print("| --- | ---: | ---: | ---: |")
    for n, a, b, c in rss_rows:
        print(f"| {n} | {a:.0f} | {b:.0f} | {c:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
