#!/usr/bin/env bash
# Python suites: the shared fake provider, the daemon's /metrics (prometheus_client's parser), the
# loopback proxy with the real openai and anthropic packages, and
# alerts (local HTTP + aiosmtpd servers) and Stripe webhooks, the tokenizer's parity with tiktoken
# (rank files from the bpe-openai wheel), team mode (a real PostgreSQL server started by
# tests/team/pg.py), and
# the Python SDK against the real daemon binary
# (SPENDWALL_BIN, default .build/debug/spendwall: run `swift build` first) with the real
# openai and anthropic packages, and the panel in a real headless Chromium (selenium; Debian's
# chromium + chromium-driver from scripts/setup-system.sh), and the reliability suite (tests/reliability: kill -9,
# a 30 s outage, 256 concurrent callers, uid and secret checks). Uses the virtualenv .venv (gitignored), creating it if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest openai anthropic prometheus_client mcp jsonschema aiosmtpd selenium \
  tiktoken
# The tokenizer parity test takes its rank files from bpe-openai and skips (saying why) without it.
"$venv/bin/python" -m pip install -q --disable-pip-version-check bpe-openai \
  || echo "warning: bpe-openai could not be installed: tests/tokenizer will skip its parity test" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e sdk-python
bin=${SPENDWALL_BIN:-.build/debug/spendwall}
if [ ! -x "$bin" ]; then
  echo "spendwall binary not found at $bin: run 'swift build' first (or set SPENDWALL_BIN)" >&2
  exit 1
fi
status=0
for suite in tests/fake_provider tests/daemon tests/proxy tests/pricing tests/mcp tests/integrations tests/sessions tests/tokenizer tests/panel tests/team tests/reliability sdk-python/tests; do
  echo "==> pytest $suite"
  # exit 5 is pytest's "no tests collected": a failure here
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$suite" || status=1
done
exit $status
