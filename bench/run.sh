#!/usr/bin/env bash
# Runs the socket benchmark against a release build of the daemon on a temporary socket.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product spendwall >/dev/null
swift build -c release --product spendwall-bench >/dev/null
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
export SPENDWALL_CONFIG_DIR=$dir/config SPENDWALL_DATA_DIR=$dir/data SPENDWALL_SOCKET=$dir/run/spendwall.sock
mkdir -p "$SPENDWALL_CONFIG_DIR"
cat > "$SPENDWALL_CONFIG_DIR/caps.toml" <<'CAPS'
[[cap]]
name = "bench-global"
scope = { global = true }
window = "1d"
limit_usd = 1000000.0
[[cap]]
name = "bench-per-agent"
scope = { agent = "*" }
window = "1h"
limit_usd = 100000.0
CAPS
SPENDWALL_LOG_LEVEL=warning .build/release/spendwall daemon & pid=$!
for _ in $(seq 100); do [ -S "$SPENDWALL_SOCKET" ] && break; sleep 0.1; done
.build/release/spendwall-bench --socket "$SPENDWALL_SOCKET" "$@"
