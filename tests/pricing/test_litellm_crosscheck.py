"""Cross-checks Spendwall's built-in price table against LiteLLM's published price map.

The map is `litellm/model_prices_and_context_window_backup.json` inside the `litellm` wheel from
PyPI (the version in LITELLM, downloaded without dependencies, cached in .venv/). For every OpenAI and Anthropic text
model LiteLLM lists and Spendwall prices, each rate both know must agree to the nano-dollar:
input, output, cache read, cache write (5 minutes and 1 hour), the long-context tier, the batch
share, and retirement. A difference fails the test unless EXPLAINED lists it with a reason.
Models LiteLLM knows that Spendwall does not price (they get the deliberately high fallback)
are listed too, when they look like models an agent would call: a new model must not silently
fall back.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
CACHE = REPO / ".venv" / "litellm-wheel"
MAP = "litellm/model_prices_and_context_window_backup.json"
# The map the table was last cross-checked against. Pinned so CI is reproducible: a newer map is
# taken by raising this (and running scripts/prices-from-litellm.py for the models it adds).
LITELLM = "1.110.2"
TODAY = datetime.date.today().isoformat()

# Text models only: audio, realtime, image, search and transcription models bill other kinds.
SKIP = re.compile(r"audio|realtime|image|search|transcribe|tts|embedding|moderation|computer-use|container")

# Differences we know of, with the reason they are not errors.
EXPLAINED: dict[tuple[str, str], str] = {
    ("gpt-3.5-turbo-1106", "batch"):
        "LiteLLM lists its batch input at the full $1.00; OpenAI's Batch API is half price for every model "
        "it takes, and the model is retired (2026-10-23), so only old rows are priced by it.",
}


def litellm_map() -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob(f"litellm-{LITELLM}-*.whl"))
    if not wheels:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                               "-d", str(CACHE), f"litellm=={LITELLM}"], capture_output=True, text=True,
                              timeout=300)
        wheels = sorted(CACHE.glob(f"litellm-{LITELLM}-*.whl"))
        if done.returncode != 0 or not wheels:
            pytest.skip(f"cannot download the litellm wheel from PyPI: {done.stderr.strip()[-300:]}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        return json.loads(wheel.read(MAP))


def nanos(cost_per_token) -> int | None:
    """LiteLLM's USD per token as Spendwall's nano-USD per million tokens."""
    return None if cost_per_token is None else round(cost_per_token * 1e15)


def spendwall_prices(models: list[str]) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as empty:  # no pricing.toml: the built-in table alone
        env = dict(os.environ, SPENDWALL_CONFIG_DIR=empty, SPENDWALL_DATA_DIR=empty)
        out = subprocess.run([BINARY, "pricing", "show", "--json", *models], env=env, capture_output=True,
                             text=True, check=True).stdout
    answers = json.loads(out)
    return {a["model"]: a for a in (answers if isinstance(answers, list) else [answers])}


def text_models(litellm: dict) -> list[str]:
    return sorted(name for name, entry in litellm.items()
                  if isinstance(entry, dict) and entry.get("litellm_provider") in ("openai", "anthropic")
                  and entry.get("mode") in ("chat", "responses") and not SKIP.search(name))


def differences(name: str, entry: dict, ours: dict) -> list[tuple[str, str]]:
    rates = ours["per_million_tokens"]
    found = []

    def compare(kind: str, theirs, mine) -> None:
        if theirs is not None and theirs != mine:
            found.append((kind, f"Spendwall {mine} vs LiteLLM {theirs} nano-USD per million tokens"))

    compare("input", nanos(entry.get("input_cost_per_token")), rates["input_nanousd"])
    compare("output", nanos(entry.get("output_cost_per_token")), rates["output_nanousd"])
    compare("cache_read", nanos(entry.get("cache_read_input_token_cost")), rates["cache_read_nanousd"])
    compare("cache_write", nanos(entry.get("cache_creation_input_token_cost")), rates["cache_write_nanousd"])
    compare("cache_write_1h", nanos(entry.get("cache_creation_input_token_cost_above_1hr")),
            rates["cache_write_1h_nanousd"])
    for key in entry:
        m = re.fullmatch(r"input_cost_per_token_above_(\d+)k_tokens", key)
        if not m:
            continue
        tier = ours.get("long_context")
        if tier is None:
            found.append(("long_context", f"LiteLLM has a tier above {m.group(1)}k tokens; Spendwall has none"))
            continue
        compare("long_context.above_tokens", int(m.group(1)) * 1000, tier["above_tokens"])
        compare("long_context.input", nanos(entry[key]), tier["per_million_tokens"]["input_nanousd"])
        compare("long_context.output", nanos(entry.get(f"output_cost_per_token_above_{m.group(1)}k_tokens")),
                tier["per_million_tokens"]["output_nanousd"])
    batch_input = nanos(entry.get("input_cost_per_token_batches"))
    if batch_input is not None and nanos(entry.get("input_cost_per_token")):
        share = rates["input_nanousd"] * ours["batch_percent"] // 100
        compare("batch", batch_input, share)
    retired = entry.get("deprecation_date")
    if retired and retired <= TODAY and ours["entry"] == name and ours.get("retired") is None:
        found.append(("retired", f"LiteLLM says retired on {retired}; Spendwall does not mark it"))
    return found


@pytest.fixture(scope="module")
def litellm() -> dict:
    if not os.path.exists(BINARY):
        pytest.fail(f"spendwall binary not found at {BINARY}: run `swift build` first")
    return litellm_map()


def test_every_model_both_know_is_priced_the_same(litellm: dict) -> None:
    names = text_models(litellm)
    ours = spendwall_prices(names)
    compared, unexplained = 0, []
    for name in names:
        mine = ours[name]
        if not mine["priced"]:
            continue
        compared += 1
        for kind, what in differences(name, litellm[name], mine):
            if (name, kind) not in EXPLAINED:
                unexplained.append(f"{name} {kind}: {what} (Spendwall entry {mine['entry']})")
    assert compared >= 50, f"only {compared} models compared: is the map or the table empty?"
    assert not unexplained, "prices that differ from LiteLLM's map:\n" + "\n".join(unexplained)


def test_no_current_model_falls_back(litellm: dict) -> None:
    names = [n for n in text_models(litellm) if not n.startswith("ft:")]
    ours = spendwall_prices(names)
    retired = {n for n in names if (litellm[n].get("deprecation_date") or "9999") <= TODAY}
    missing = [n for n in names if not ours[n]["priced"] and n not in retired]
    assert not missing, ("models LiteLLM prices that Spendwall would price at the fallback "
                         "(add them: scripts/prices-from-litellm.py):\n" + "\n".join(missing))


def test_the_check_catches_a_wrong_price(litellm: dict) -> None:
    """The comparison itself can fail: a price off by one nano-dollar per million is a difference."""
    name = "gpt-4o"
    mine = spendwall_prices([name])[name]
    mine["per_million_tokens"]["output_nanousd"] += 1
    assert [k for k, _ in differences(name, litellm[name], mine)] == ["output"]
