"""Spendwall: put any OpenAI or Anthropic client behind the local Spendwall daemon.

    import spendwall.openai, openai
    client = spendwall.openai.wrap(openai.OpenAI(), agent="reviewer")

Every call is checked against your caps before it goes upstream and its real usage is
reported to the daemon's ledger, in the background (`spendwall.flush()` waits for it). See
README.md for options, environment and fail modes."""
from __future__ import annotations

from ._config import Settings, configure
from ._context import attribution, tags
from ._errors import ApprovalDenied, BudgetExceeded, DaemonUnavailable, Killed, SpendwallError
from ._helpers import estimate, flush, health, remaining, replay_spool, snapshot
from ._spool import SpoolFull

__version__ = "0.1.0"

__all__ = [
    "ApprovalDenied",
    "BudgetExceeded",
    "DaemonUnavailable",
    "Killed",
    "Settings",
    "SpendwallError",
    "SpoolFull",
    "attribution",
    "configure",
    "estimate",
    "flush",
    "health",
    "remaining",
    "replay_spool",
    "snapshot",
    "tags",
]
