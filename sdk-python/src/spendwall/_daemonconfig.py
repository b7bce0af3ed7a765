"""The two daemon settings the SDK follows, read from the daemon's own `spendwall.toml`:
`[policy] fail_mode` (an unreachable daemon fails the call when it is `"closed"`) and
`[policy] approval_timeout` (how long the daemon may hold a check for a person's decision,
which the check request must outlast).

The file is read only when one of them is needed (the daemon could not be reached; a check
still unanswered at the configured timeout), cached, and read again when its modification
time, size or inode changes. A missing or unreadable file gives no settings. `tomllib` reads
it where the standard library has it (Python 3.11+); otherwise, or when the file is not valid
TOML, a minimal reader picks out just those two keys."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

try:  # Python 3.11+
    import tomllib as _tomllib
except ImportError:  # pragma: no cover - exercised on 3.9/3.10, and by a test that hides it
    _tomllib = None  # type: ignore[assignment]

__all__ = ["DaemonPolicy", "default_config_dir", "parse_policy", "daemon_policy", "approval_timeout",
           "parse_duration", "DEFAULT_APPROVAL_TIMEOUT", "APPROVAL_MARGIN"]

FILE = "spendwall.toml"
DEFAULT_APPROVAL_TIMEOUT = 300.0  # seconds: the daemon's default `approval_timeout = "5m"`
APPROVAL_MARGIN = 30.0  # seconds a check waits for its answer past the daemon's approval timeout


class DaemonPolicy(NamedTuple):
    fail_mode: Optional[str]  # "open" | "closed" | None (not set, or not understood)
    approval_timeout: Optional[float]  # seconds, None when not set or malformed


NONE = DaemonPolicy(None, None)


def default_config_dir() -> str:
    """`$SPENDWALL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/spendwall`, else `~/.config/spendwall`."""
    env = os.environ.get("SPENDWALL_CONFIG_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(str(Path.home()), ".config")
    return os.path.join(base, "spendwall")


_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: Any) -> Optional[float]:
    """A duration as the daemon reads it: a positive whole number and one of s, m, h, d."""
    if not isinstance(text, str):
        return None
    m = _DURATION.fullmatch(text)
    if not m:
        return None
    count, unit = int(m.group(1)), _UNITS[m.group(2)]
    if count <= 0 or count * unit > 3650 * 86400:
        return None
    return float(count * unit)


def _from_table(policy: Any) -> DaemonPolicy:
    if not isinstance(policy, dict):
        return NONE
    mode = policy.get("fail_mode")
    return DaemonPolicy(mode if mode in ("open", "closed") else None, parse_duration(policy.get("approval_timeout")))


# ------------------------------------------------------------------ the minimal reader
_KEY_PART = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+))\s*(\.|$)')
_STRING = re.compile(r'\s*(?:"((?:[^"\\\n]|\\.)*)"|\'([^\'\n]*)\')\s*(?:#.*)?')
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _key_parts(raw: str) -> List[str]:
    """A TOML key: bare or quoted parts separated by dots; [] when it is not one."""
    parts: List[str] = []
    pos = 0
    while pos < len(raw):
        m = _KEY_PART.match(raw, pos)
        if not m or m.end() == pos:
            return []
        parts.append(next(g for g in m.groups()[:3] if g is not None))
        pos = m.end()
        if m.group(4) == "":
            break
    return parts if pos >= len(raw) else []


def _string_value(raw: str) -> Optional[str]:
    """A one-line basic or literal string, then nothing but a comment; None otherwise."""
    m = _STRING.fullmatch(raw)
    if not m:
        return None
    if m.group(2) is not None:
        return m.group(2)
    out, s, i = [], m.group(1), 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1:i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in ("u", "U"):
            n = 4 if nxt == "u" else 8
            try:
                out.append(chr(int(s[i + 2:i + 2 + n], 16)))
            except ValueError:
                return None
            i += 2 + n
        else:
            return None
    return "".join(out)


def _split_key_value(line: str) -> Optional[Tuple[str, str]]:
    """`key = value` with `=` outside any quoted key part."""
    quote = ""
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "=":
            return line[:i], line[i + 1:]
    return None


def _minimal(text: str) -> DaemonPolicy:
    """Reads `fail_mode` and `approval_timeout` of the `[policy]` table (or root keys
    `policy.fail_mode = ...`). Everything else is skipped, not validated: the daemon validates
    its own file."""
    values: Dict[str, str] = {}
    table: Optional[List[str]] = []  # None: inside an array of tables, never [policy]
    closing: Optional[str] = None  # inside a multi-line string: its closing quotes
    for line in text.splitlines():
        if closing is not None:
            if closing in line:
                closing = None
            continue
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[["):
            table = None
            continue
        if s.startswith("["):
            end = s.find("]")
            table = _key_parts(s[1:end]) if end > 0 else None
            continue
        kv = _split_key_value(s)
        if kv is None:
            continue
        raw_key, value = kv
        opener = re.match(r'\s*("""|\'\'\')', value)
        if opener and opener.group(1) not in value.strip()[3:]:
            closing = opener.group(1)
            continue
        if table is None:
            continue
        key = table + _key_parts(raw_key)
        if len(key) != 2 or key[0] != "policy" or key[1] not in ("fail_mode", "approval_timeout"):
            continue
        v = _string_value(value)
        if v is not None:
            values[key[1]] = v
    return _from_table(values)


def parse_policy(text: str) -> DaemonPolicy:
    """The `[policy]` keys the SDK follows, from the text of a spendwall.toml."""
    if _tomllib is not None:
        try:
            return _from_table(_tomllib.loads(text).get("policy"))
        except ValueError:  # tomllib.TOMLDecodeError: read what can be read
            pass
    return _minimal(text)


_lock = threading.Lock()
_cache: Dict[str, Tuple[Tuple[int, int, int], DaemonPolicy]] = {}


def daemon_policy(config_dir: str) -> DaemonPolicy:
    """The `[policy]` settings of `<config_dir>/spendwall.toml`, cached by the file's
    modification time, size and inode (an editor's atomic rename changes the inode)."""
    path = os.path.join(config_dir, FILE)
    try:
        st = os.stat(path)
    except OSError:
        return NONE
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        policy = parse_policy(text)
    except (OSError, ValueError):  # unreadable (permissions, a directory): as if it were not there
        policy = NONE
    with _lock:
        _cache[path] = (stamp, policy)
    return policy


def approval_timeout(config_dir: str) -> float:
    """Seconds the daemon may hold a check for an approval, per its config (default 5 min)."""
    t = daemon_policy(config_dir).approval_timeout
    return DEFAULT_APPROVAL_TIMEOUT if t is None else t
