"""Input tokens of real chat requests: the daemon's estimate (`POST /v1/estimate`, with the
tokenizers installed) against OpenAI's documented counting, computed here with Python's
tiktoken: `num_tokens_from_messages` and `num_tokens_for_tools` from OpenAI's cookbook
("How to count tokens with tiktoken"), written out below from its rules. They must agree
within ±2 tokens on every request: system prompts, several turns, names, tools with enums."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from tests.conftest import Daemon

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
ENCODINGS = ["o200k_base", "cl100k_base"]


def bpe_openai() -> Path:
    """The rank files ship (gzip-compressed) in the bpe-openai wheel on PyPI."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "bpe-openai"], capture_output=True,
                              text=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("bpe_openai")
        if spec is None:
            pytest.skip("bpe-openai (the rank files) could not be installed: " + done.stderr.strip()[-300:])
    return Path(spec.origin).parent


@pytest.fixture(scope="module")
def encodings(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    import tiktoken

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    package = bpe_openai()
    for name in ENCODINGS:
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        data = gzip.decompress((package / "data" / f"{name}.tiktoken.gz").read_bytes())
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    return {name: tiktoken.get_encoding(name) for name in ENCODINGS}


@pytest.fixture(scope="module")
def daemon(encodings: Dict[str, Any]) -> Iterator[Daemon]:
    d = Daemon()
    done = subprocess.run([BINARY, "tokenizer", "install", "--from", str(bpe_openai())], env=d.env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    d.stop()
    d.start()  # tokenizers are loaded at start
    yield d
    d.cleanup()


# --- OpenAI's documented counting (the cookbook's rules), over tiktoken -----------------------

def encoding_for(model: str, encodings: Dict[str, Any]) -> Any:
    return encodings["cl100k_base" if model.startswith(("gpt-4-", "gpt-3.5")) or model == "gpt-4" else "o200k_base"]


def num_tokens_from_messages(messages: List[Dict[str, str]], model: str, encodings: Dict[str, Any]) -> int:
    encoding = encoding_for(model, encodings)
    tokens_per_message, tokens_per_name = 3, 1
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            num_tokens += len(encoding.encode(value))
            if key == "name":
                num_tokens += tokens_per_name
    return num_tokens + 3  # every reply is primed with <|start|>assistant<|message|>


def num_tokens_for_tools(functions: List[Dict[str, Any]], messages: List[Dict[str, str]], model: str,
                         encodings: Dict[str, Any]) -> int:
    if model.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o")):
        func_init, prop_init, prop_key, enum_init, enum_item, func_end = 7, 3, 3, -3, 3, 12
    else:  # gpt-3.5-turbo, gpt-4
        func_init, prop_init, prop_key, enum_init, enum_item, func_end = 10, 3, 3, -3, 3, 12
    encoding = encoding_for(model, encodings)
    count = 0
    if functions:
        for f in functions:
            count += func_init
            function = f["function"]
            description = function["description"]
            if description.endswith("."):
                description = description[:-1]
            count += len(encoding.encode(function["name"] + ":" + description))
            properties = function["parameters"]["properties"]
            if properties:
                count += prop_init
                for key, prop in properties.items():
                    count += prop_key
                    if "enum" in prop:
                        count += enum_init
                        for item in prop["enum"]:
                            count += enum_item + len(encoding.encode(item))
                    p_desc = prop["description"]
                    if p_desc.endswith("."):
                        p_desc = p_desc[:-1]
                    count += len(encoding.encode(f"{key}:{prop['type']}:{p_desc}"))
        count += func_end
    return num_tokens_from_messages(messages, model, encodings) + count


# --- Requests --------------------------------------------------------------------------------

COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
                                  "into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch "
                                                          "base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to "
                                                               "do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
                                "deliverable."},
]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return",
                 "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}

TEXTS = [
    "Refactor this function so it no longer allocates in the loop:\n\nfor i in range(n):\n    out.append(f(i))",
    "Résumé the meeting notes in three bullet points. Keep names (José, Zoë, 李雷) as written.",
    "What's 1234567 * 89? Show the steps.", "请用中文总结这段代码的作用。", "Thanks! 👍🏽 That fixed it.",
    "Traceback (most recent call last):\n  File \"app.py\", line 12, in <module>\n    main()\nKeyError: 'user_id'",
    "    indented\tand\ttabbed\n\n\nwith blank lines   and   runs of spaces",
    "Write a SQL query: SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 10;",
]


def generated(seed: int) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    cases = []
    for i in range(40):
        model = rng.choice(["gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-3.5-turbo", "gpt-4.1", "gpt-5"])
        messages = [{"role": "system", "content": rng.choice(TEXTS) + " You are a careful coding agent."}]
        for turn in range(rng.randint(1, 5)):
            user = {"role": "user", "content": " ".join(rng.sample(TEXTS, rng.randint(1, 3)))}
            if rng.random() < 0.3:
                user["name"] = rng.choice(["alice", "bob_2", "ci-runner"])
            messages.append(user)
            messages.append({"role": "assistant", "content": rng.choice(TEXTS)})
        messages.append({"role": "user", "content": rng.choice(TEXTS)})
        tools = []
        for t in range(rng.randint(0, 3)):
            props = {}
            for p in range(rng.randint(0, 3)):
                prop = {"type": rng.choice(["string", "integer", "boolean"]),
                        "description": rng.choice(["The file path.", "How many results", "Whether to recurse."])}
                if rng.random() < 0.4:
                    prop["type"] = "string"
                    prop["enum"] = rng.sample(["asc", "desc", "none", "fast", "thorough"], rng.randint(1, 3))
                props[f"arg_{p}"] = prop
            tools.append({"type": "function", "function": {
                "name": f"tool_{i}_{t}", "description": rng.choice(["Read a file.", "Search the repository",
                                                                    "Run the test suite."]),
                "parameters": {"type": "object", "properties": props}}})
        cases.append({"model": model, "messages": messages, "tools": tools})
    return cases


CASES = [
    {"model": m, "messages": COOKBOOK_MESSAGES, "tools": []} for m in ["gpt-3.5-turbo", "gpt-4-0613", "gpt-4o",
                                                                         "gpt-4o-mini"]
] + [
    {"model": m, "messages": [{"role": "system", "content": "You are a helpful assistant that can answer to "
                                                            "questions about the weather."},
                              {"role": "user", "content": "What's the weather like in San Francisco?"}],
     "tools": [WEATHER_TOOL]} for m in ["gpt-3.5-turbo", "gpt-4", "gpt-4o", "gpt-4o-mini"]
] + generated(20261203)


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['model']}" for i, c in enumerate(CASES)])
def test_estimate_matches_openais_documented_count(daemon: Daemon, encodings: Dict[str, Any],
                                                   case: Dict[str, Any]) -> None:
    request = {"model": case["model"], "messages": case["messages"], "max_tokens": 100}
    if case["tools"]:
        request["tools"] = case["tools"]
    expected = num_tokens_for_tools(case["tools"], case["messages"], case["model"], encodings)
    status, answer = daemon.call("POST", "/v1/estimate", {"provider": "openai", "request": request})
    assert status == 200, answer
    assert answer["exact"] is True
    assert abs(answer["input_tokens"] - expected) <= 2, (answer["input_tokens"], expected)

