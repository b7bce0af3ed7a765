"""Options: an explicit argument first, the environment second, the defaults last."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Optional

from ._daemonconfig import default_config_dir

__all__ = ["Settings", "configure", "settings", "default_socket_path", "default_data_dir", "default_config_dir"]

_TRUE = {"1", "true", "yes", "on"}


def default_socket_path() -> str:
    env = os.environ.get("SPENDWALL_SOCKET")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "spendwall", "spendwall.sock")
    return f"/tmp/spendwall-{os.getuid()}/spendwall.sock"


def default_data_dir() -> str:
    env = os.environ.get("SPENDWALL_DATA_DIR")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(str(Path.home()), ".local", "share")
    return os.path.join(base, "spendwall")


@dataclass(frozen=True)
class Settings:
    """Everything the SDK needs to reach the daemon. Unset fields resolve from the environment."""

    socket_path: Optional[str] = None
    data_dir: Optional[str] = None
    config_dir: Optional[str] = None  # the daemon's: where its spendwall.toml ([policy]) lives
    strict: Optional[bool] = None
    # seconds for a daemon answer; a check waits at least the daemon's approval_timeout + 30 s
    timeout: float = 30.0
    connect_timeout: float = 1.0
    spool_max_bytes: int = 64 * 1024 * 1024
    agent: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    session: Optional[str] = None
    transport: Any = None  # injectable sync transport (see _client.Transport)
    async_transport: Any = None  # injectable async transport (see _client.AsyncTransport)

    def resolved_socket(self) -> str:
        return self.socket_path or default_socket_path()

    def resolved_data_dir(self) -> str:
        return self.data_dir or default_data_dir()

    def resolved_config_dir(self) -> str:
        return self.config_dir or default_config_dir()

    def resolved_strict(self) -> bool:
        if self.strict is not None:
            return self.strict
        return os.environ.get("SPENDWALL_STRICT", "").strip().lower() in _TRUE

    def spool_dir(self) -> str:
        return os.path.join(self.resolved_data_dir(), "spool")


_lock = threading.Lock()
_settings = Settings()
_generation = 0


def configure(**options: Any) -> Settings:
    """Sets process-wide options: socket_path, data_dir, config_dir, strict, timeout, connect_timeout,
    spool_max_bytes, agent, tags, session. Passing None resets an option to its default."""
    global _settings, _generation
    known = set(Settings.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    defaults = Settings()
    values = {k: (getattr(defaults, k) if v is None else v) for k, v in options.items()}
    if "tags" in values:
        values["tags"] = {str(k): str(v) for k, v in dict(values["tags"]).items()}
    if "strict" in options and options["strict"] is None:
        values["strict"] = None
    with _lock:
        _settings = replace(_settings, **values)
        _generation += 1
        return _settings


def settings() -> Settings:
    return _settings


def generation() -> int:
    """Changes whenever configure() is called (clients re-resolve their socket then)."""
    return _generation


def reset() -> None:
    """Back to the defaults (for tests)."""
    global _settings, _generation
    with _lock:
        _settings = Settings()
        _generation += 1
