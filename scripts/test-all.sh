#!/usr/bin/env bash
# Runs every test suite of the repository; fails if any suite fails.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
run() {
  echo "==> $*"
  "$@" || { echo "FAILED: $*" >&2; status=1; }
}
run swift test
for suite in scripts/test-python.sh scripts/test-typescript.sh; do
  [ -f "$suite" ] && run bash "$suite"
done
exit $status
