"""Kill in flight: a stream in progress stops at its next chunk when its scope is killed, driven
by the daemon's event stream (GET /v1/events), against the real daemon and the fake provider.
Bad paths (a daemon without the endpoint, a dropped event stream, a daemon restart) leave calls
unaffected and the subscription reconnects."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import anthropic
import openai
import pytest

import spendwall
import spendwall._config as cfg
import spendwall._killwatch as kw
import spendwall.anthropic
import spendwall.openai
from conftest import Daemon, Fake, FakeDaemon

MSG = [{"role": "user", "content": "hi"}]
DELAY_MS = 400  # between chunks of the fake's slow stream: 8 events, ~2.8 s in all
SLOW = {"x-fake-scenario": "slow-stream", "x-fake-delay-ms": str(DELAY_MS)}


def oai(fake: Fake, **wrap: Any) -> Any:
    return spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0), **wrap)


def kill(d: Daemon, on: bool = True, **scope: str) -> None:
    status, body = d.request("POST", "/v1/kill", {**scope, "on": on})
    assert status == 200, body


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def the_watch(socket_path: str) -> kw.KillWatch:
    w = kw._watches.get(socket_path)
    assert w is not None, "no kill watch was started"
    return w


def kill_seen(d: Daemon, **scope: str) -> None:
    """Turns a switch on, then waits until this process's kill watch has it (from the event
    stream, or its seed on reconnect): from then on, every stream it covers stops before its
    next chunk, however slowly the event travelled."""
    kill(d, **scope)
    [(kind, value)] = scope.items()
    w = the_watch(d.socket)
    wait_for(lambda: (kind, value) in w.active())


def full_stream_len(fake: Fake) -> int:
    bare = openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0)
    return len(list(bare.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)))


def stream_until_killed(client: Any, kill_after: int, flip: Callable[[], None], **kw_: Any) -> Tuple[int, Optional[BaseException]]:
    """Reads a slow chat stream, flipping the kill after `kill_after` chunks. Returns (chunks
    received, the exception raised or None)."""
    got = 0
    try:
        for _ in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True, extra_headers=SLOW, **kw_):
            got += 1
            if got == kill_after:
                flip()
    except spendwall.Killed as exc:
        return got, exc
    return got, None


# ---------------------------------------------------------------------------------- real daemon

def test_agent_kill_stops_sync_stream_at_next_chunk_other_agent_unaffected(use_daemon: Daemon, fake: Fake,
                                                                           agent: str) -> None:
    full = full_stream_len(fake)
    bystander = agent + "-by"
    victim_client, by_client = oai(fake, agent=agent), oai(fake, agent=bystander)
    by_chunks: List[Any] = []
    t = threading.Thread(target=lambda: by_chunks.extend(
        by_client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True, extra_headers=SLOW)))
    t.start()
    try:
        got, exc = stream_until_killed(victim_client, 2, lambda: kill_seen(use_daemon, agent=agent))
    finally:
        t.join(30)
        kill(use_daemon, on=False, agent=agent)
    assert isinstance(exc, spendwall.Killed) and isinstance(exc, spendwall.SpendwallError)
    assert exc.code == "killed" and exc.in_flight and exc.scope == {"kind": "agent", "value": agent}
    assert got == 2 < full  # stopped at the next chunk, well before the stream's end
    assert len(by_chunks) == full  # another agent's stream ran to its end
    [row] = use_daemon.rows(agent, 1)
    assert row["outcome"] == "killed" and row["status"] == 200
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0  # usage so far + estimate of the text
    assert row["reservation_id"].startswith("r_")
    time.sleep(0.3)
    assert len(use_daemon.rows(agent)) == 1  # exactly one row for the call
    [by_row] = use_daemon.rows(bystander, 1)
    assert by_row["outcome"] == "ok"


def test_session_kill_stops_async_anthropic_stream_manager(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    session = "s-" + uuid.uuid4().hex[:8]
    client = spendwall.anthropic.wrap(anthropic.AsyncAnthropic(api_key="k", base_url=fake.url, max_retries=0),
                                      agent=agent)
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def victim() -> Tuple[int, Optional[BaseException]]:
        got = 0
        try:
            async with client.messages.stream(model="claude-opus-4-5", max_tokens=64, messages=MSG,
                                              extra_headers=SLOW, spendwall={"session": session}) as s:
                async for _ in s:
                    got += 1
                    if got == 2:
                        await asyncio.to_thread(kill_seen, use_daemon, session=session)
        except spendwall.Killed as exc:
            return got, exc
        return got, None

    async def bystander() -> int:
        n = 0
        async with client.messages.stream(model="claude-opus-4-5", max_tokens=64, messages=MSG,
                                          extra_headers=SLOW, spendwall={"session": session + "-other"}) as s:
            async for _ in s:
                n += 1
        return n

    async def main() -> Tuple[Tuple[int, Optional[BaseException]], int]:
        stop = asyncio.Event()
        tick_task = asyncio.create_task(ticker(stop))
        (got, exc), n = await asyncio.gather(victim(), bystander())
        stop.set()
        await tick_task
        await client.close()
        return (got, exc), n

    try:
        (got, exc), n = asyncio.run(main())
    finally:
        kill(use_daemon, on=False, session=session)
    assert isinstance(exc, spendwall.Killed) and exc.scope == {"kind": "session", "value": session}
    assert got < n  # the other session's stream ran on, to its end
    assert ticks > 50  # the event loop kept running throughout (~2.8 s of 10 ms ticks)
    rows = use_daemon.rows(agent, 2)
    by_session = {r["session"]: r for r in rows}
    assert len(rows) == 2
    assert by_session[session]["outcome"] == "killed" and by_session[session]["input_tokens"] > 0
    assert by_session[session + "-other"]["outcome"] == "ok"


def test_global_kill_stops_sync_anthropic_stream_then_checks_refuse(use_daemon: Daemon, fake: Fake,
                                                                    agent: str) -> None:
    client = spendwall.anthropic.wrap(anthropic.Anthropic(api_key="k", base_url=fake.url, max_retries=0),
                                      agent=agent)
    got = 0
    try:
        with pytest.raises(spendwall.Killed) as info:
            with client.messages.stream(model="claude-opus-4-5", max_tokens=64, messages=MSG,
                                        extra_headers=SLOW) as s:
                for _ in s:
                    got += 1
                    if got == 1:
                        kill(use_daemon)
        assert info.value.scope == {"kind": "global"} and info.value.in_flight
        with pytest.raises(spendwall.Killed) as refused:  # while the switch is on, checks refuse
            client.messages.create(model="claude-opus-4-5", max_tokens=8, messages=MSG)
        assert not refused.value.in_flight
    finally:
        kill(use_daemon, on=False)
    # the daemon records the refused check too (at once; the stream's report goes in the background,
    # so the two rows may be in either order)
    [stream_row], [refused_row] = ([r for r in use_daemon.rows(agent, 2) if ("reservation_id" in r) is has]
                                   for has in (True, False))
    assert stream_row["outcome"] == "killed" and stream_row["input_tokens"] > 0
    assert stream_row["reservation_id"].startswith("r_")
    assert refused_row["outcome"] == "killed" and "reservation_id" not in refused_row
    # switched off: streams run to their end again
    assert len(list(client.messages.create(model="claude-opus-4-5", max_tokens=8, messages=MSG, stream=True))) > 3


def test_async_openai_stream_killed_and_reported_once(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0),
                                   agent=agent)

    async def main() -> Tuple[int, Optional[BaseException]]:
        got = 0
        try:
            stream = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                          extra_headers=SLOW)
            async for _ in stream:
                got += 1
                if got == 1:
                    await asyncio.to_thread(kill_seen, use_daemon, agent=agent)
        except spendwall.Killed as exc:
            return got, exc
        finally:
            await client.close()
        return got, None

    try:
        got, exc = asyncio.run(main())
    finally:
        kill(use_daemon, on=False, agent=agent)
    assert isinstance(exc, spendwall.Killed) and got == 1
    [row] = use_daemon.rows(agent, 1)
    assert row["outcome"] == "killed"
    time.sleep(0.3)
    assert len(use_daemon.rows(agent)) == 1


def test_stale_switches_never_kill_a_later_call(use_daemon: Daemon, agent: str) -> None:
    """The watch's view of the switches, seeded from GET /v1/kill: a switch turned on before a
    call's check began would have refused that check, so it only kills calls older than it."""
    kill(use_daemon, agent=agent)
    try:
        w = kw.KillWatch(use_daemon.socket)

        class FakeCall:
            def __init__(self, time_ms: int) -> None:
                self.agent, self.session, self.app, self.time_ms = agent, None, None, time_ms

        class FakeTracker:
            def __init__(self, call: FakeCall) -> None:
                self.call, self.killed_by = call, None

        old = FakeTracker(FakeCall(0))
        new = FakeTracker(FakeCall(int(time.time() * 1000) + 1000))
        w.register(old)
        w.register(new)
        wait_for(lambda: w.seeded.is_set())
        assert ("agent", agent) in w.active()
        assert isinstance(old.killed_by, spendwall.Killed) and new.killed_by is None
        # an event older than what the watch knows (one that preceded the seed) is skipped
        since = dict(w._switches)[("agent", agent)][1]
        w.apply({"scope": {"kind": "agent", "value": agent}, "on": False, "time_ms": since - 1})
        assert ("agent", agent) in w.active()
        w.unregister(old)
        w.unregister(new)
    finally:
        kill(use_daemon, on=False, agent=agent)


def test_subscription_reconnects_after_daemon_restart(monkeypatch: pytest.MonkeyPatch, fake: Fake,
                                                      agent: str) -> None:
    monkeypatch.setattr(kw, "BACKOFF_MAX", 0.5)
    d = Daemon(caps="").start()
    try:
        monkeypatch.setenv("SPENDWALL_SOCKET", d.socket)
        cfg.reset()
        client = oai(fake, agent=agent)
        assert len(list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))) > 3
        w = the_watch(d.socket)
        wait_for(lambda: w.connected and w.seeded.is_set())
        first = w.connects
        d.stop()
        wait_for(lambda: not w.connected)
        d.start()  # same socket; the watch reconnects on its own
        wait_for(lambda: w.connects > first and w.seeded.is_set())
        got, exc = stream_until_killed(client, 1, lambda: kill_seen(d, agent=agent))
        assert isinstance(exc, spendwall.Killed) and got == 1
        assert [r["outcome"] for r in d.rows(agent, 2)] == ["ok", "killed"]
    finally:
        d.cleanup()


def test_idle_subscription_closes_and_reopens(monkeypatch: pytest.MonkeyPatch, use_daemon: Daemon, fake: Fake,
                                              agent: str) -> None:
    monkeypatch.setattr(kw, "LINGER", 0.3)
    monkeypatch.setattr(kw, "POLL", 0.05)
    client = oai(fake, agent=agent)
    list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    w = the_watch(use_daemon.socket)
    wait_for(lambda: w._thread is None and not w.connected)  # nothing in flight: closed
    got, exc = stream_until_killed(client, 1, lambda: kill_seen(use_daemon, agent=agent))
    kill(use_daemon, on=False, agent=agent)
    assert isinstance(exc, spendwall.Killed) and got == 1


# ---------------------------------------------------------------------------------- fake daemons

def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_head(sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                 b"transfer-encoding: chunked\r\n\r\n" + chunk(b": spendwall events\n\n"))


def kill_event(n: int, scope: Dict[str, str]) -> bytes:
    t = int(time.time() * 1000)
    data = {"id": n, "kind": "KillSwitch", "time_ms": t,
            "data": {"scope": scope, "on": True, "time_ms": t, "by": {"pid": 1, "uid": 0, "exe": "/x"}}}
    return f"id: {n}\nevent: KillSwitch\ndata: {json.dumps(data)}\n\n".encode()


def test_daemon_without_events_endpoint_calls_unaffected(monkeypatch: pytest.MonkeyPatch, root: str, fake: Fake,
                                                         agent: str) -> None:
    monkeypatch.setattr(kw, "NO_EVENTS_BACKOFF", 0.1)
    fd = FakeDaemon(root)
    try:
        monkeypatch.setenv("SPENDWALL_SOCKET", fd.path)
        cfg.reset()
        client = oai(fake, agent=agent)
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True, extra_headers=
                                                     {"x-fake-scenario": "slow-stream", "x-fake-delay-ms": "150"}))
        assert len(chunks) == full_stream_len(fake)
        w = the_watch(fd.path)
        wait_for(lambda: w.attempts >= 3)  # retried (slowly in real life), never connected
        assert w.connects == 0
        assert spendwall.flush()  # reports go in the background
        [report] = fd.reports()
        assert report["outcome"] == "ok"
    finally:
        fd.close()


def test_dropped_event_stream_reconnects_and_chunked_events_split_anywhere(monkeypatch: pytest.MonkeyPatch,
                                                                           root: str, fake: Fake,
                                                                           agent: str) -> None:
    monkeypatch.setattr(kw, "BACKOFF_MIN", 0.05)

    def events(n: int, sock: socket.socket) -> None:
        sse_head(sock)
        if n < 3:
            time.sleep(0.05)
            return  # dropped: the connection closes with no terminating chunk
        time.sleep(0.3)
        # the kill, as one chunk cut at odd places, and keep-alives around it
        ev = b": keepalive\n\n" + kill_event(7, {"kind": "agent", "value": agent}) + b": keepalive\n\n"
        for part in (ev[:5], ev[5:40], ev[40:41], ev[41:]):
            sock.sendall(chunk(part))
            time.sleep(0.01)
        time.sleep(5)

    fd = FakeDaemon(root, events)
    try:
        monkeypatch.setenv("SPENDWALL_SOCKET", fd.path)
        cfg.reset()
        client = oai(fake, agent=agent)
        got, exc = stream_until_killed(client, 100, lambda: None)  # no flip: the third connection says it
        assert isinstance(exc, spendwall.Killed) and exc.scope == {"kind": "agent", "value": agent}
        assert 1 <= got < full_stream_len(fake)
        assert fd.event_connections >= 3
        assert spendwall.flush()
        [report] = fd.reports()
        assert report["outcome"] == "killed"
        # this fake daemon never turns the switch off, but a check it allowed after the flip means
        # the switch no longer covered the call: the watch's stale "on" never kills a later call
        assert len(list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))) > 3
    finally:
        fd.close()


# ---------------------------------------------------------------------------------- units

def test_sse_parser_and_dechunker_incremental() -> None:
    d = kw._Dechunker()
    raw = chunk(b"abc") + chunk(b"defg") + b"0\r\n\r\n"
    out = b"".join(d.feed(raw[i:i + 1]) for i in range(len(raw)))
    assert out == b"abcdefg" and d.ended
    p = kw.SSEParser()
    stream = b": hello\n\nid: 1\r\nevent: KillSwitch\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: X\n\n"
    got = [e for i in range(len(stream)) for e in p.feed(stream[i:i + 1])]
    assert got == [("KillSwitch", '{"a":\n1}')]  # comments and data-less events are not dispatched


def test_scope_covers_and_unknown_app() -> None:
    class C:
        agent, session, app = "a", "s", None

    assert kw.scope_covers(("global", None), C)
    assert kw.scope_covers(("agent", "a"), C) and not kw.scope_covers(("agent", "b"), C)
    assert kw.scope_covers(("session", "s"), C)
    assert not kw.scope_covers(("app", "python3"), C)  # the app is unknown unless the check said it
    C.app = "python3"
    assert kw.scope_covers(("app", "python3"), C)
    assert kw.parse_scope({"kind": "agent"}) is None and kw.parse_scope({"kind": "global"}) == ("global", None)


def test_injected_transport_has_no_watch() -> None:
    class T:
        def request(self, *a: Any) -> Any:
            return 200, {}

        def close(self) -> None:
            pass

    assert kw.watch_for(T()) is None
