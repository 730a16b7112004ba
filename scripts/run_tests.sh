#!/usr/bin/env bash
# The whole test suite: unit tests (GoogleTest via CTest), the GGUF fuzz test under
# ASan/UBSan, end-to-end tests of the `tessera` binary against reference outputs, and the
# tests of the Python package.
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
echo "== Python package (tessera, installed by make python into $BUILD/pyvenv)"
if [ -x "$BUILD/pyvenv/bin/python" ]; then
  TESSERA_BIN="$BUILD/tessera" "$BUILD/pyvenv/bin/python" -m pytest -q -rs tests/python || status=1
else
  echo "error: $BUILD/pyvenv is missing: run make python BUILD=$BUILD (make test does)"
  status=1
fi
exit $status
