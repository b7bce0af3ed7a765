"""The Swift tokenizer (`spendwall tokenizer encode`) against Python's tiktoken: the same token
ids for every string of a seeded corpus, for o200k_base and cl100k_base, both as
`encode_ordinary` (what the daemon counts with) and as `encode(allowed_special="all")`.

Rank files come from the `bpe-openai` wheel on PyPI (it ships both encodings, gzip-compressed):
tiktoken reads them from a temporary cache dir (by tiktoken's own SHA-1 naming and SHA-256
check) and the daemon gets them through `spendwall tokenizer install --from`. The test skips
only when `bpe-openai` cannot be installed."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import tiktoken

from tests.tokenizer.corpus import corpus

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
ENCODINGS = ["o200k_base", "cl100k_base"]
CORPUS_SEED = 20250607
CORPUS_SIZE = 2400


def _bpe_openai_dir() -> Path:
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None:
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "bpe-openai"],
                                capture_output=True, text=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("bpe_openai")
        if spec is None:
            pytest.skip("the rank files come from the bpe-openai package on PyPI, which could not be installed: "
                        + (result.stderr.strip().splitlines() or ["(no output)"])[-1])
    return Path(spec.origin).parent


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    package = _bpe_openai_dir()
    root = tmp_path_factory.mktemp("tok")
    cache = root / "tiktoken-cache"
    cache.mkdir()
    for name in ENCODINGS:
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        data = gzip.decompress((package / "data" / f"{name}.tiktoken.gz").read_bytes())
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    # tiktoken reads the cache dir when an encoding is first loaded (and checks the SHA-256).
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    env = dict(os.environ, SPENDWALL_DATA_DIR=str(root / "data"), SPENDWALL_CONFIG_DIR=str(root / "config"),
               TIKTOKEN_CACHE_DIR=str(root / "empty-cache"), TMPDIR=str(root))
    return {"package": package, "env": env, "root": root,
            "tiktoken": {name: tiktoken.get_encoding(name) for name in ENCODINGS}}


def run(args: List[str], env: Dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, "tokenizer", *args], input=stdin.encode(), capture_output=True, env=env,
                          timeout=300)


def test_without_rank_files_the_error_says_what_to_run(setup) -> None:
    result = run(["encode", "--encoding", "o200k_base"], setup["env"], "hello")
    assert result.returncode == 1
    assert b"spendwall tokenizer install" in result.stderr, result.stderr
    status = json.loads(run(["status", "--json"], setup["env"]).stdout)
    assert [e["available"] for e in status["encodings"]] == [False, False]


def test_install_from_the_package(setup) -> None:
    result = run(["install", "--from", str(setup["package"])], setup["env"])
    assert result.returncode == 0, result.stderr
    assert b"o200k_base" in result.stdout and b"cl100k_base" in result.stdout
    status = json.loads(run(["status", "--json"], setup["env"]).stdout)
    assert all(e["available"] for e in status["encodings"]), status
    assert status["directory"] == str(setup["root"] / "data" / "tokenizers")


def test_corrupt_rank_file_is_refused(setup, tmp_path: Path) -> None:
    bad = tmp_path / "o200k_base.tiktoken"
    bad.write_bytes(b"IQ== 0\n")
    result = run(["install", "--from", str(bad)], setup["env"])
    assert result.returncode == 1
    assert b"is not a rank file tiktoken pins" in result.stderr, result.stderr


@pytest.mark.parametrize("special", [False, True], ids=["encode_ordinary", "allowed_special_all"])
@pytest.mark.parametrize("name", ENCODINGS)
def test_token_ids_equal_tiktoken(setup, name: str, special: bool) -> None:
    if not all(e["available"] for e in json.loads(run(["status", "--json"], setup["env"]).stdout)["encodings"]):
        assert run(["install", "--from", str(setup["package"])], setup["env"]).returncode == 0
    texts = corpus(CORPUS_SEED, CORPUS_SIZE)
    assert len(texts) >= 2000
    reference = setup["tiktoken"][name]
    expected = [reference.encode(t, allowed_special="all") if special else reference.encode_ordinary(t)
                for t in texts]
    args = ["encode", "--encoding", name, "--jsonl"] + (["--allow-special"] if special else [])
    result = run(args, setup["env"], "".join(json.dumps(t) + "\n" for t in texts))
    assert result.returncode == 0, result.stderr.decode()
    got = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(got) == len(texts)
    mismatches = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
    detail = "\n".join(f"{t!r}\n  tiktoken: {e}\n  swift:    {g}" for t, e, g in mismatches[:5])
    assert not mismatches, f"{len(mismatches)} of {len(texts)} strings differ:\n{detail}"
    # The corpus exercises what it claims to: special-token text, and many tokens in all.
    if special:
        assert sum(1 for ids in expected if any(i in reference._special_tokens.values() for i in ids)) >= 25
    assert sum(len(ids) for ids in expected) > 50_000
