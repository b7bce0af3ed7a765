#!/usr/bin/env bash
# The proxy benchmark (bench/README.md, "Proxy"): installs what it needs if missing, then runs
# bench/proxy/bench_proxy.py with the given options.
#
#   SPENDWALL_BIN=/path/to/release/spendwall bash bench/proxy/run.sh [bench_proxy.py options]
#
# - wrk (Debian package) for the closed-loop phase; without it the asyncio client is used.
# - LiteLLM: bench/.venv-litellm with `litellm[proxy]` (gitignored; pip picks the newest release
#   whose proxy extra it can resolve).
# - CostPlan: bench/.venv-costplan with `costplan[proxy]`; its proxy is benchmarked only when
#   COSTPLAN_CMD says how to start it ({port}, {upstream}, {upstream_v1} are filled in), else the
#   reason it is skipped (the pip error, when it cannot be installed) goes into the report.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${SPENDWALL_BIN:-.build/release/spendwall}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; } \
      || echo "wrk could not be installed: the closed loop uses the asyncio client" >&2
  else
    echo "no wrk: the closed loop uses the asyncio client" >&2
  fi
fi

if [ ! -x bench/.venv-litellm/bin/litellm ]; then
  python3 -m venv bench/.venv-litellm
  bench/.venv-litellm/bin/pip install -q 'litellm[proxy]' || echo "pip install 'litellm[proxy]' failed" >&2
fi

costplan_args=()
if [ -n "${COSTPLAN_CMD:-}" ]; then
  costplan_args=(--costplan-cmd "$COSTPLAN_CMD")
else
  [ -d bench/.venv-costplan ] || python3 -m venv bench/.venv-costplan
  if out=$(bench/.venv-costplan/bin/pip install -q 'costplan[proxy]' 2>&1); then
    reason="costplan[proxy] is installed in bench/.venv-costplan, but COSTPLAN_CMD (how to start its proxy) is not set"
  else
    reason="\`pip install 'costplan[proxy]'\` failed: $(printf '%s\n' "$out" | grep -E '^ERROR' | head -2 | tr '\n' ' ')"
  fi
  costplan_args=(--costplan-skip-reason "$reason")
fi

exec python3 bench/proxy/bench_proxy.py --spendwall-bin "$bin" "${costplan_args[@]}" "$@"
