#!/usr/bin/env python3
"""A stand-in for an agent launched by `spendwall run`: it calls the OpenAI chat API through
OPENAI_BASE_URL (the proxy under /session/ID/) in a loop, edits files of the repository it runs
in, and on Ctrl+C prints a resume line the way Claude Code does, then exits 130.

    agent.py [--stubborn]   # --stubborn: ignore SIGINT and SIGTERM (only SIGKILL stops it)
"""
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

stubborn = "--stubborn" in sys.argv


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def on_signal(signo, _frame) -> None:
    name = signal.Signals(signo).name
    if stubborn:
        say(f"ignoring {name}")
        return
    say(f"got {name}")
    say("To continue this session, run claude --resume 0f3c-resume-id")
    sys.exit(130)


def on_resize(_signo, _frame) -> None:
    size = os.get_terminal_size(1)
    say(f"size={size.columns}x{size.lines}")


signal.signal(signal.SIGWINCH, on_resize)
signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)

say(f"tty={os.isatty(1)} session={os.environ.get('SPENDWALL_SESSION')}")
say(f"base={os.environ.get('OPENAI_BASE_URL')} anthropic={os.environ.get('ANTHROPIC_BASE_URL')}")
if os.path.exists("tracked.txt"):
    with open("tracked.txt", "a") as f:
        f.write("a line the agent added\n")
    with open("new.txt", "w") as f:
        f.write("a file the agent created\n")

url = os.environ["OPENAI_BASE_URL"] + "/chat/completions"
body = json.dumps({"model": "gpt-4o", "max_tokens": 10,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
n = 0
while True:
    n += 1
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json",
                                                              "authorization": "Bearer sk-test"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            say(f"call {n}: {response.status}")
    except urllib.error.HTTPError as error:
        say(f"call {n}: {error.code} {json.loads(error.read())['error']['code']}")
        time.sleep(0.05)
    except Exception as error:  # a call cut in flight (a kill switch): keep going until stopped
        say(f"call {n}: {error}")
        time.sleep(0.05)
