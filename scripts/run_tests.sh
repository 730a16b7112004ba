#!/usr/bin/env bash
# The whole test suite: unit tests (GoogleTest via CTest), the GGUF fuzz test under
# ASan/UBSan, end-to-end tests of the `tessera` binary against reference outputs, the
# tests of the Python package, the formatting check, and the checked tiers: the unit tests
# and the fast e2e subset (pytest -m checked) on a Debug build with ASan/UBSan
# ($BUILD-asan), the concurrency tests (engine, server, ranks on threads) on a TSan build
# ($BUILD-tsan) (make checked builds both).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
status=0
# Each part's wall time, printed when the next one starts and at the end.
part_name="" part_start=$SECONDS
part() {
  [ -z "$part_name" ] || echo "-- $part_name: $((SECONDS - part_start)) s"
  part_name=$1 part_start=$SECONDS
  [ -z "$1" ] || echo "== $1"
}
part "unit tests"
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)" || status=1
part "GGUF loader fuzz test (ASan + UBSan)"
"$BUILD/gguf_fuzz" || status=1
part "end-to-end tests"
# The slowest tests are listed: where the suite's time goes.
TESSERA_BIN="$BUILD/tessera" .venv/bin/python -m pytest -q -rs --durations=15 tests/e2e || status=1
part "Python package (tessera, installed by make python into $BUILD/pyvenv)"
if [ -x "$BUILD/pyvenv/bin/python" ]; then
  TESSERA_BIN="$BUILD/tessera" "$BUILD/pyvenv/bin/python" -m pytest -q -rs tests/python || status=1
else
  echo "error: $BUILD/pyvenv is missing: run make python BUILD=$BUILD (make test does)"
  status=1
fi
part "formatting (clang-format, .clang-format)"
scripts/check_format.sh || status=1

# make test builds the checked trees and sets TESSERA_REQUIRE_CHECKED=1: a missing one fails
# the run there; a run by hand without them says so and goes on.
missing_checked() {
  if [ "${TESSERA_REQUIRE_CHECKED:-0}" = 1 ]; then
    echo "error: $1 is missing: run make checked BUILD=$BUILD"
    status=1
  else
    echo "skipped: $1 is missing (make checked BUILD=$BUILD builds it)"
  fi
}
# A sanitizer report fails the run (the builds use -fno-sanitize-recover=all).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
CHECKED_E2E="tests/e2e/test_server.py tests/e2e/test_stories260k.py"
ASAN_BUILD=${ASAN_BUILD:-$BUILD-asan}
part "checked tier: Debug (asserts on) + ASan/UBSan in $ASAN_BUILD"
if [ -x "$ASAN_BUILD/tessera_tests" ] && [ -x "$ASAN_BUILD/tessera" ]; then
  ctest --test-dir "$ASAN_BUILD" --output-on-failure -j "$(nproc)" || status=1
  TESSERA_BIN="$ASAN_BUILD/tessera" .venv/bin/python -m pytest -q -rs -m checked $CHECKED_E2E ||
    status=1
  # Every hostile-client probe against the sanitized server.
  TESSERA_SANITIZED=1 TESSERA_BIN="$ASAN_BUILD/tessera" .venv/bin/python -m pytest -q -rs \
    tests/e2e/test_http_hostile.py ||
    status=1
else
  missing_checked "$ASAN_BUILD"
fi
TSAN_BUILD=${TSAN_BUILD:-$BUILD-tsan}
part "checked tier: TSan (engine thread, HTTP threads, thread pool) in $TSAN_BUILD"
if [ -x "$TSAN_BUILD/tessera_tests" ] && [ -x "$TSAN_BUILD/tessera" ]; then
  # This tree's tessera_tests is built of the concurrency tests only (CMakeLists.txt).
  "$TSAN_BUILD/tessera_tests" --gtest_brief=1 || status=1
  TESSERA_BIN="$TSAN_BUILD/tessera" .venv/bin/python -m pytest -q -rs -m checked \
    tests/e2e/test_server.py || status=1
else
  missing_checked "$TSAN_BUILD"
fi
part ""
exit $status
