#!/usr/bin/env python3
"""How far greedy continuations of two OpenAI-style servers agree, prompt by prompt.

Runs N prompts (64 tokens, greedy, raw completion) against each server given as NAME=URL
(llama-server's /completion or Tessera's /v1/completions are both driven through
/v1/completions with token ids), then prints for every pair of servers the number of
identical continuations and, for the others, the first differing step.

  bench/greedy_agreement.py tessera=http://127.0.0.1:8080 llama=http://127.0.0.1:8081
  bench/greedy_agreement.py --long tessera=... llama=...

--long uses 20 prompts of 80 to 320 words cut from /usr/share/common-licenses/GPL-3 instead
(prompts of 64+ tokens, which both engines attend to with their tiled arithmetic).
"""
import json
import sys
import urllib.request

PROMPTS = [
    "The capital of France is", "def fibonacci(n):\n", "Once upon a time, in a small village,",
    "The three primary colors are", "In 1969, Neil Armstrong", "Water boils at",
    "The best way to learn a new language is", "import numpy as np\n",
    "My favorite food is", "The theory of relativity states that", "Dear hiring manager,",
    "The quick brown fox", "Photosynthesis is the process", "To make a cup of tea,",
    "The largest planet in our solar system", "SELECT * FROM users WHERE",
    "Machine learning is", "The history of the Roman Empire", "How to bake bread:",
    "The ocean is",
]


def complete(url, prompt, n):
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "logprobs": 2,
            "return_tokens": True, "cache_prompt": False}
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=600))["choices"][0]["text"]


def long_prompts():
    words = open("/usr/share/common-licenses/GPL-3").read().split()
    out, start = [], 0
    for i in range(20):
        n = 80 + (i * 12) % 241
        out.append(" ".join(words[start:start + n]))
        start += n
    return out


def main():
    args = sys.argv[1:]
    prompts = PROMPTS
    if args and args[0] == "--long":
        prompts, args = long_prompts(), args[1:]
    servers = dict(a.split("=", 1) for a in args)
    out = {name: [complete(url, p, 64) for p in prompts] for name, url in servers.items()}
    names = list(servers)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = out[names[i]], out[names[j]]
            same = sum(x == y for x, y in zip(a, b))
            firsts = [next(k for k in range(min(len(x), len(y)) + 1)
                           if k == min(len(x), len(y)) or x[k] != y[k])
                      for x, y in zip(a, b) if x != y]
            print(f"{names[i]} vs {names[j]}: {same}/{len(prompts)} identical; "
                  f"first differing character of the others: {sorted(firsts)}")
    json.dump(out, open("greedy_agreement.json", "w"), indent=1)


if __name__ == "__main__":
    main()
