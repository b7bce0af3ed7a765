#!/usr/bin/env bash
# Swift tokenizer vs Python tiktoken on ~1 MB of mixed text (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product spendwall >/dev/null
swift build -c release --product spendwall-tokenizer-bench >/dev/null
venv=.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check tiktoken bpe-openai
exec "$venv/bin/python" bench/tokenizer/bench_tokenizer.py "$@"
