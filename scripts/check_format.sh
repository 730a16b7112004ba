#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (Debian's, with the root
# .clang-format) makes of it. Fix with: scripts/check_format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cc' '*.hpp')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/clang-format.$$; then
  grep -o '^[^:]*:[0-9]*:[0-9]*: error' /tmp/clang-format.$$ | cut -d: -f1 | sort -u |
    sed 's/^/not formatted: /'
  rm -f /tmp/clang-format.$$
  echo "run scripts/check_format.sh --fix"
  exit 1
fi
rm -f /tmp/clang-format.$$
echo "all ${#files[@]} files formatted"
