#!/usr/bin/env bash
# TypeScript SDK: builds sdk-typescript with Debian's tsc into sdk-typescript/dist (gitignored),
# runs its node --test suites against the real daemon binary (SPENDWALL_BIN, default
# .build/debug/spendwall: run `swift build` first) and the shared fake provider, then packs the
# package with npm and checks that the tarball installs offline into a fresh project where both
# `import` and `require` work. No registry is used.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SPENDWALL_BIN:-.build/debug/spendwall}
if [ ! -x "$bin" ]; then
  echo "spendwall binary not found at $bin: run 'swift build' first (or set SPENDWALL_BIN)" >&2
  exit 1
fi
SPENDWALL_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export SPENDWALL_BIN
for tool in tsc node npm python3 flock; do
  command -v "$tool" >/dev/null || { echo "test-typescript: '$tool' is not installed" >&2; exit 1; }
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
  || { echo "test-typescript: Node >= 18 is needed (found $(node --version))" >&2; exit 1; }

cd sdk-typescript
rm -rf dist build-test
echo "==> tsc $(tsc --version | sed 's/Version //'): sdk-typescript/dist"
tsc -p tsconfig.json
node scripts/esm-entry.mjs
tsc -p tsconfig.test.json
echo "==> node --test (node $(node --version))"
node --test build-test/
echo "==> npm pack, offline install, import and require"
bash scripts/pack-check.sh
