#!/usr/bin/env python3
"""Brings Sources/SpendwallPricing/Resources/prices.json up to date with LiteLLM's price map.

    python3 scripts/prices-from-litellm.py PATH/TO/model_prices_and_context_window_backup.json [--today YYYY-MM-DD]

(The map is inside the `litellm` wheel: `pip download litellm --no-deps`, then unzip
`litellm/model_prices_and_context_window_backup.json`.)

What it does, and nothing else:
- adds OpenAI and Anthropic chat/responses models the table cannot resolve (text models only:
  audio, realtime, image, search and transcription models bill other kinds of tokens), with the
  map's rates, 1-hour cache writes, long-context tier and retirement date, sourced to LiteLLM;
- on existing entries, fills in a missing 1-hour cache-write rate, long-context tier and
  retirement date; it never changes an existing base rate: a difference is printed for a person
  to check against the provider's pricing page (tests/pricing/test_litellm_crosscheck.py fails on
  it until it is fixed or explained).
"""
import argparse
import datetime
import json
import re
import sys
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "Sources/SpendwallPricing/Resources/prices.json"
SKIP = re.compile(r"audio|realtime|image|search|transcribe|tts|embedding|moderation|computer-use|container")
SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|[-@]\d{8}|-latest)$")


def per_million(cost):
    return None if cost is None else round(cost * 1_000_000, 6)


def rates(entry, suffix=""):
    out = {
        "input": per_million(entry.get("input_cost_per_token" + suffix)),
        "output": per_million(entry.get("output_cost_per_token" + suffix)),
        "cache_read": per_million(entry.get("cache_read_input_token_cost" + suffix)),
        "cache_write": per_million(entry.get("cache_creation_input_token_cost" + suffix)),
    }
    one_hour = entry.get("cache_creation_input_token_cost_above_1hr" + suffix)
    if suffix == "" and one_hour is not None:
        out["cache_write_1h"] = per_million(one_hour)
    return {k: v for k, v in out.items() if v is not None}


def long_context(entry):
    for key in entry:
        m = re.fullmatch(r"input_cost_per_token_above_(\d+)k_tokens", key)
        if m:
            tier = rates(entry, f"_above_{m.group(1)}k_tokens")
            if "input" in tier and "output" in tier:
                return {"above_tokens": int(m.group(1)) * 1000, **tier}
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("litellm_map")
    parser.add_argument("--today", default=datetime.date.today().isoformat())
    parser.add_argument("--version", default="litellm")
    args = parser.parse_args()
    litellm = json.loads(Path(args.litellm_map).read_text())
    table = json.loads(TABLE.read_text())
    models = table["models"]

    def resolvable(name):
        base = SNAPSHOT.sub("", name)
        return name in models or base in models or name + ":*" in models

    added, filled = [], []
    for name, entry in sorted(litellm.items()):
        if not isinstance(entry, dict) or entry.get("litellm_provider") not in ("openai", "anthropic"):
            continue
        if entry.get("mode") not in ("chat", "responses") or SKIP.search(name):
            continue
        retired = entry.get("deprecation_date")
        retired = retired if retired and retired <= args.today else None
        if name in models:
            row = models[name]
            base = rates(entry)
            for kind in ("input", "output"):
                if kind in base and abs(base[kind] - row[kind]) > 1e-9:
                    print(f"differs: {name} {kind} table {row[kind]} vs litellm {base[kind]}", file=sys.stderr)
            if "cache_write_1h" in base and "cache_write_1h" not in row:
                row["cache_write_1h"] = base["cache_write_1h"]
                filled.append(name)
            tier = long_context(entry)
            if tier and "long_context" not in row:
                row["long_context"] = tier
                filled.append(name)
            if retired and "retired" not in row:
                row["retired"] = retired
                filled.append(name)
            continue
        if resolvable(name) or entry.get("input_cost_per_token") is None:
            continue
        row = rates(entry)
        tier = long_context(entry)
        if tier:
            row["long_context"] = tier
        if retired:
            row["retired"] = retired
        row["as_of"] = args.today
        row["source"] = f"{args.version} model_prices_and_context_window_backup.json"
        # A fine-tuned model's name goes on after its base (ft:gpt-4o-2024-08-06:org::id).
        models[name + ":*" if name.startswith("ft:") else name] = row
        added.append(name)
    TABLE.write_text(json.dumps(table, indent=1) + "\n")
    print(f"added {len(added)}: {', '.join(added)}")
    print(f"filled in {len(set(filled))}: {', '.join(sorted(set(filled)))}")


if __name__ == "__main__":
    main()
