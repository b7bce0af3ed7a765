"""Tokens per second of the Swift tokenizer (release `spendwall-tokenizer-bench`) against Python
tiktoken (its Rust core) on the same ~1 MB of mixed text, in one run: both encode with
`encode_ordinary` on one thread, after a warm-up, REPETITIONS times; the median is reported.

Rank files come from the bpe-openai package (as in tests/tokenizer): tiktoken reads them from a
temporary cache dir, the Swift bench from a temporary data dir filled by `spendwall tokenizer install`.
Usage: bench/tokenizer/run.sh [--size BYTES] [--repetitions N]"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.tokenizer.corpus import mixed_text  # noqa: E402

ENCODINGS = ["o200k_base", "cl100k_base"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    release = REPO / ".build" / "release"
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None:
        sys.exit("needs the bpe-openai package (pip install bpe-openai) for the rank files")
    package = Path(spec.origin).parent
    with tempfile.TemporaryDirectory() as root:
        cache = Path(root) / "cache"
        cache.mkdir()
        for name in ENCODINGS:
            url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
            data = gzip.decompress((package / "data" / f"{name}.tiktoken.gz").read_bytes())
            (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
        import tiktoken

        env = dict(os.environ, SPENDWALL_DATA_DIR=str(Path(root) / "data"), TIKTOKEN_CACHE_DIR=str(Path(root) / "none"))
        subprocess.run([str(release / "spendwall"), "tokenizer", "install", "--from", str(package)], env=env,
                       check=True, capture_output=True)
        text = mixed_text(args.seed, args.size)
        path = Path(root) / "text.txt"
        path.write_text(text, encoding="utf-8")
        size = len(text.encode())
        print(f"text: {size:,} bytes, {len(text):,} characters (seed {args.seed}); "
              f"median of {args.repetitions} after a warm-up; load average {os.getloadavg()[0]:.2f}")
        print()
        print("| encoding | tokens | tiktoken ms | Swift ms | tiktoken tokens/s | Swift tokens/s | Swift ÷ tiktoken |")
        print("|---|---|---|---|---|---|---|")
        for name in ENCODINGS:
            encoding = tiktoken.get_encoding(name)
            expected = encoding.encode_ordinary(text)  # warm-up
            seconds = []
            for _ in range(args.repetitions):
                start = time.perf_counter()
                encoding.encode_ordinary(text)
                seconds.append(time.perf_counter() - start)
            python_median = statistics.median(seconds)
            out = subprocess.run([str(release / "spendwall-tokenizer-bench"), str(path), name, str(args.repetitions)],
                                 env=env, check=True, capture_output=True, text=True)
            swift = json.loads(out.stdout)
            if swift["tokens"] != len(expected):
                sys.exit(f"{name}: Swift gave {swift['tokens']} tokens, tiktoken {len(expected)}")
            swift_median = statistics.median(swift["seconds"])
            tokens = len(expected)
            print(f"| {name} | {tokens:,} | {python_median * 1000:.1f} | {swift_median * 1000:.1f} | "
                  f"{tokens / python_median:,.0f} | {tokens / swift_median:,.0f} | "
                  f"{python_median / swift_median:.2f} |")
        print()
        print(f"tiktoken {tiktoken.__version__}; Swift rank-file load (read, SHA-256, parse): "
              f"{swift['load_seconds'] * 1000:.0f} ms ({name}); load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
