#!/usr/bin/env bash
# The whole test suite: unit tests (GoogleTest via CTest), the GGUF fuzz test under
# ASan/UBSan, and end-to-end tests of the `tessera` binary against reference outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
status=0
echo "== unit tests"
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)" || status=1
echo "== GGUF loader fuzz test (ASan + UBSan)"
"$BUILD/gguf_fuzz" || status=1
echo "== end-to-end tests"
TESSERA_BIN="$BUILD/tessera" .venv/bin/python -m pytest -q -rs tests/e2e || status=1
exit $status
