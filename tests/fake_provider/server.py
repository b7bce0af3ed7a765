#!/usr/bin/env python3
"""A fake LLM provider speaking the OpenAI and Anthropic wire formats (stdlib only).

Run:  python3 tests/fake_provider/server.py --port 0
      -> prints ``PORT <n>`` as its first stdout line, serves 127.0.0.1 until SIGTERM/SIGINT.

In-process:  ``with FakeProvider() as fake: fake.base_url ...``

Per-request control headers:
  x-fake-usage: input,output,cache_read,cache_write,reasoning   (default 11,7,0,0,0)
      OpenAI: prompt_tokens = input + cache_read, cached_tokens = cache_read,
              completion_tokens = output (reasoning_tokens is its subset).
      Anthropic: input_tokens = input, cache_read_input_tokens = cache_read,
              cache_creation_input_tokens = cache_write, output_tokens = output.
  x-fake-text: the assistant text (default DEFAULT_TEXT), streamed as several deltas.
  x-fake-scenario: ok | error-400 | error-401 | error-429 | error-500 | broken-stream | slow-stream
  x-fake-delay-ms: delay between stream chunks for slow-stream (default 50); for any other
      scenario, a delay before the response is sent.
  x-fake-gate: NAME  the request is recorded, then held (before any delay or answer) until
      `POST /_fake/release?gate=NAME` (or a reset); held at most GATE_TIMEOUT_S, then answered.
      Tests use it to hold calls in flight until a condition holds, instead of sleeping.
  x-fake-encoding: gzip | deflate  JSON answers are sent compressed with that Content-Encoding
      (as real providers do for clients that accept it); any other value labels the uncompressed
      answer with that Content-Encoding (an encoding a reader cannot know). The record's
      response_sha256 and response_body stay those of the uncompressed content.

Introspection:
  GET  /_fake/requests  -> JSON list of every request received (method, path, headers, body,
                           sha256, response_status, response_sha256, response_body)
  POST /_fake/reset     -> clears that list and the defaults, and releases every gate
  POST /_fake/defaults?x-fake-usage=...&x-fake-delay-ms=...
                        -> control headers applied to requests that do not send them (for
                           requests the daemon makes on its own, such as count_tokens)
  POST /_fake/release?gate=NAME -> releases the calls held at that gate, and later ones
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

DEFAULT_TEXT = "Hello from the fake provider. It answers every request the same way."
DEFAULT_USAGE = (11, 7, 0, 0, 0)
DEFAULT_DELAY_MS = 50
GATE_TIMEOUT_S = 60.0

Usage = Tuple[int, int, int, int, int]


def _split_text(text: str, parts: int = 4) -> List[str]:
    """Splits text into up to `parts` non-empty deltas whose concatenation is the text."""
    if not text:
        return [""]
    words = text.split(" ")
    if len(words) >= parts:
        size = (len(words) + parts - 1) // parts
        chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [c + (" " if i < len(chunks) - 1 else "") for i, c in enumerate(chunks)]
    step = max(1, (len(text) + parts - 1) // parts)
    return [text[i : i + step] for i in range(0, len(text), step)]


def _now() -> int:
    return int(time.time())


# --------------------------------------------------------------------------------------------
# OpenAI shapes


def openai_usage(u: Usage) -> Dict[str, Any]:
    inp, out, cread, _cwrite, reason = u
    prompt = inp + cread
    return {
        "prompt_tokens": prompt,
        "completion_tokens": out,
        "total_tokens": prompt + out,
        "prompt_tokens_details": {"cached_tokens": cread, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reason,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(u: Usage) -> Dict[str, Any]:
    inp, out, cread, _cwrite, reason = u
    return {
        "input_tokens": inp + cread,
        "input_tokens_details": {"cached_tokens": cread},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reason},
        "total_tokens": inp + cread + out,
    }


def anthropic_usage(u: Usage, output: Optional[int] = None) -> Dict[str, Any]:
    inp, out, cread, cwrite, _reason = u
    return {
        "input_tokens": inp,
        "cache_creation_input_tokens": cwrite,
        "cache_read_input_tokens": cread,
        "output_tokens": out if output is None else output,
    }


OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request (fake provider)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (fake provider)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (fake provider)."),
    500: ("server_error", None, "The server had an error while processing your request (fake provider)."),
}
ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request (fake provider)."),
    401: ("authentication_error", "invalid x-api-key (fake provider)"),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (fake provider)."),
    500: ("api_error", "Internal server error (fake provider)."),
}


class _Exchange:
    """What one request asked for, parsed from its headers and body."""

    def __init__(self, handler: "Handler", body: bytes) -> None:
        sent = handler.headers
        defaults = handler.server.defaults  # type: ignore[attr-defined]

        class _Headers:
            @staticmethod
            def get(name: str, default: Optional[str] = None) -> Optional[str]:
                return sent.get(name) or defaults.get(name) or default

        h = _Headers()
        self.body = body
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = None
        self.json: Optional[Dict[str, Any]] = parsed if isinstance(parsed, dict) else None
        raw = h.get("x-fake-usage")
        if raw:
            parts = [int(p.strip() or 0) for p in raw.split(",")]
            parts += [0] * (5 - len(parts))
            self.usage: Usage = tuple(parts[:5])  # type: ignore[assignment]
        else:
            self.usage = DEFAULT_USAGE
        self.text = h.get("x-fake-text", DEFAULT_TEXT)
        self.scenario = (h.get("x-fake-scenario") or "ok").strip().lower()
        delay = h.get("x-fake-delay-ms")
        self.delay_ms = int(delay) if delay else (DEFAULT_DELAY_MS if self.scenario == "slow-stream" else 0)
        self.gate = (h.get("x-fake-gate") or "").strip() or None
        self.model = (self.json or {}).get("model") or "fake-model"
        self.stream = bool((self.json or {}).get("stream"))
        so = (self.json or {}).get("stream_options") or {}
        self.include_usage = bool(isinstance(so, dict) and so.get("include_usage"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-provider/1.0"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers, bodies and SSE chunks are separate small writes: without TCP_NODELAY, Nagle's
        # algorithm meets the client's delayed ACK and each response stalls ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _record(self, body: bytes) -> Dict[str, Any]:
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "sha256": hashlib.sha256(body).hexdigest(),
            "time_ms": int(time.time() * 1000),
            "response_status": None,
            "response_sha256": None,
            "response_body": None,
            "complete": False,
        }
        with self.server.lock:
            self.server.requests.append(entry)
        return entry

    def _finish(self, entry: Dict[str, Any], status: int, sent: bytes, complete: bool) -> None:
        with self.server.lock:
            entry["response_status"] = status
            entry["response_sha256"] = hashlib.sha256(sent).hexdigest()
            entry["response_body"] = sent.decode("utf-8", "replace")
            entry["complete"] = complete

    def _send_json(self, status: int, obj: Any, entry: Optional[Dict[str, Any]] = None,
                   extra: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(obj).encode()
        content = data
        encoding = (self.headers.get("x-fake-encoding") or "").strip().lower()
        if encoding == "gzip":
            data = gzip.compress(data)
        elif encoding == "deflate":
            data = zlib.compress(data)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if entry is not None:  # recorded first, so a client that has the body finds the record
            self._finish(entry, status, content, True)
        self.wfile.write(data)
        self.wfile.flush()

    def _stream(self, entry: Dict[str, Any], events: Iterator[bytes], ex: _Exchange,
                break_after: Optional[int] = None) -> None:
        """Sends SSE payloads with chunked encoding; optionally cuts the connection midway."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        sent = b""
        n = 0
        try:
            for payload in events:
                if break_after is not None and n >= break_after:
                    self._finish(entry, 200, sent, False)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if n > 0 and ex.scenario == "slow-stream" and ex.delay_ms:
                    time.sleep(ex.delay_ms / 1000.0)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                self.wfile.flush()
                sent += payload
                n += 1
            self._finish(entry, 200, sent, True)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._finish(entry, 200, sent, False)
            self.close_connection = True

    # ---------------------------------------------------------------- dispatch

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/_fake/requests" and self.command == "GET":
            with self.server.lock:
                data = json.loads(json.dumps(self.server.requests))
            return self._send_json(200, data)
        if path == "/_fake/reset" and self.command == "POST":
            with self.server.lock:
                self.server.requests.clear()
                self.server.defaults = {}
                gates, self.server.gates = self.server.gates, {}
            for gate in gates.values():
                gate.set()
            return self._send_json(200, {"ok": True})
        if path == "/_fake/defaults" and self.command == "POST":
            query = parse_qs(urlsplit(self.path).query)
            with self.server.lock:
                self.server.defaults = {k: v[0] for k, v in query.items() if k.startswith("x-fake-")}
            return self._send_json(200, {"ok": True})
        if path == "/_fake/release" and self.command == "POST":
            name = parse_qs(urlsplit(self.path).query).get("gate", [""])[0]
            if not name:
                return self._send_json(400, {"error": {"message": "POST /_fake/release?gate=NAME"}})
            self.server.gate(name).set()
            return self._send_json(200, {"ok": True})

        entry = self._record(body)
        ex = _Exchange(self, body)
        if ex.gate is not None:
            self.server.gate(ex.gate).wait(GATE_TIMEOUT_S)
        routes = [
            ("POST", "/messages/count_tokens", self._anthropic_count_tokens, "anthropic"),
            ("POST", "/messages", self._anthropic_messages, "anthropic"),
            ("POST", "/chat/completions", self._openai_chat, "openai"),
            ("POST", "/responses", self._openai_responses, "openai"),
            ("POST", "/completions", self._openai_completions, "openai"),
            ("POST", "/embeddings", self._openai_embeddings, "openai"),
            ("GET", "/models", self._openai_models, "openai"),
        ]
        for method, suffix, fn, provider in routes:
            if path.endswith(suffix):
                if self.command != method:
                    break
                if ex.json is None and method == "POST":
                    return self._error(entry, provider, 400)
                if ex.delay_ms and ex.scenario != "slow-stream":
                    time.sleep(ex.delay_ms / 1000.0)
                if ex.scenario.startswith("error-"):
                    try:
                        code = int(ex.scenario.split("-", 1)[1])
                    except ValueError:
                        code = 500
                    return self._error(entry, provider, code)
                return fn(entry, ex)
        self._send_json(404, {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error",
                                        "param": None, "code": "unknown_url"}}, entry)

    def _error(self, entry: Dict[str, Any], provider: str, code: int) -> None:
        if provider == "anthropic":
            typ, msg = ANTHROPIC_ERRORS.get(code, ("api_error", "error (fake provider)"))
            rid = "req_" + uuid.uuid4().hex[:24]
            return self._send_json(code, {"type": "error", "error": {"type": typ, "message": msg}, "request_id": rid},
                                   entry, {"request-id": rid})
        typ, c, msg = OPENAI_ERRORS.get(code, ("server_error", None, "error (fake provider)"))
        extra = {"x-request-id": "req_" + uuid.uuid4().hex[:24]}
        if code == 429:
            extra["retry-after"] = "0"
        self._send_json(code, {"error": {"message": msg, "type": typ, "param": None, "code": c}}, entry, extra)

    # ---------------------------------------------------------------- OpenAI

    def _openai_chat(self, entry: Dict[str, Any], ex: _Exchange) -> None:
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = _now()
        if not ex.stream:
            return self._send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": ex.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ex.text, "refusal": None,
                                                     "annotations": []},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": openai_usage(ex.usage), "service_tier": "default", "system_fingerprint": "fp_fake",
            }, entry)

        def chunk(choices: List[Dict[str, Any]], usage: Any = None, with_usage_key: bool = False) -> bytes:
            obj: Dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                                   "model": ex.model, "service_tier": "default", "system_fingerprint": "fp_fake",
                                   "choices": choices}
            if with_usage_key:
                obj["usage"] = usage
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        def events() -> Iterator[bytes]:
            iu = ex.include_usage
            yield chunk([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                          "logprobs": None, "finish_reason": None}], None, iu)
            for piece in _split_text(ex.text):
                yield chunk([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}],
                            None, iu)
            yield chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], None, iu)
            if iu:
                yield chunk([], openai_usage(ex.usage), True)
            yield b"data: [DONE]\n\n"

        self._stream(entry, events(), ex, 3 if ex.scenario == "broken-stream" else None)

    def _openai_completions(self, entry: Dict[str, Any], ex: _Exchange) -> None:
        cid = "cmpl-" + uuid.uuid4().hex[:24]
        created = _now()
        u = openai_usage(ex.usage)
        usage = {k: u[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        if not ex.stream:
            return self._send_json(200, {
                "id": cid, "object": "text_completion", "created": created, "model": ex.model,
                "choices": [{"text": ex.text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage, "system_fingerprint": "fp_fake",
            }, entry)

        def chunk(choices: List[Dict[str, Any]], usage_val: Any = None, with_usage_key: bool = False) -> bytes:
            obj: Dict[str, Any] = {"id": cid, "object": "text_completion", "created": created, "model": ex.model,
                                   "choices": choices, "system_fingerprint": "fp_fake"}
            if with_usage_key:
                obj["usage"] = usage_val
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        def events() -> Iterator[bytes]:
            iu = ex.include_usage
            pieces = _split_text(ex.text)
            for i, piece in enumerate(pieces):
                fin = "stop" if i == len(pieces) - 1 else None
                yield chunk([{"text": piece, "index": 0, "logprobs": None, "finish_reason": fin}], None, iu)
            if iu:
                yield chunk([], usage, True)
            yield b"data: [DONE]\n\n"

        self._stream(entry, events(), ex, 2 if ex.scenario == "broken-stream" else None)

    def _openai_responses(self, entry: Dict[str, Any], ex: _Exchange) -> None:
        rid = "resp_" + uuid.uuid4().hex
        mid = "msg_" + uuid.uuid4().hex
        created = _now()
        req = ex.json or {}

        def response(status: str, output: List[Any], usage: Any) -> Dict[str, Any]:
            return {
                "id": rid, "object": "response", "created_at": created, "status": status, "background": False,
                "error": None, "incomplete_details": None, "instructions": req.get("instructions"),
                "max_output_tokens": req.get("max_output_tokens"), "model": ex.model, "output": output,
                "parallel_tool_calls": True, "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": True,
                "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
                "usage": usage, "user": None, "metadata": {},
            }

        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ex.text}
        item = {"id": mid, "type": "message", "status": "completed", "content": [part], "role": "assistant"}
        if not ex.stream:
            return self._send_json(200, response("completed", [item], responses_usage(ex.usage)), entry)

        def events() -> Iterator[bytes]:
            seq = 0

            def ev(obj: Dict[str, Any]) -> bytes:
                nonlocal seq
                obj["sequence_number"] = seq
                seq += 1
                return ("event: %s\ndata: %s\n\n" % (obj["type"], json.dumps(obj))).encode()

            yield ev({"type": "response.created", "response": response("in_progress", [], None)})
            yield ev({"type": "response.in_progress", "response": response("in_progress", [], None)})
            empty_item = {"id": mid, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
            yield ev({"type": "response.output_item.added", "output_index": 0, "item": empty_item})
            yield ev({"type": "response.content_part.added", "item_id": mid, "output_index": 0, "content_index": 0,
                      "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
            for piece in _split_text(ex.text):
                yield ev({"type": "response.output_text.delta", "item_id": mid, "output_index": 0,
                          "content_index": 0, "delta": piece, "logprobs": []})
            yield ev({"type": "response.output_text.done", "item_id": mid, "output_index": 0, "content_index": 0,
                      "text": ex.text, "logprobs": []})
            yield ev({"type": "response.content_part.done", "item_id": mid, "output_index": 0, "content_index": 0,
                      "part": part})
            yield ev({"type": "response.output_item.done", "output_index": 0, "item": item})
            yield ev({"type": "response.completed", "response": response("completed", [item],
                                                                          responses_usage(ex.usage))})

        self._stream(entry, events(), ex, 6 if ex.scenario == "broken-stream" else None)

    def _openai_embeddings(self, entry: Dict[str, Any], ex: _Exchange) -> None:
        inp = (ex.json or {}).get("input")
        n = len(inp) if isinstance(inp, list) and inp and not isinstance(inp[0], int) else 1
        prompt = ex.usage[0] + ex.usage[2]
        self._send_json(200, {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": [0.0125 * (i + 1), -0.5, 0.25, 0.0]}
                     for i in range(n)],
            "model": ex.model, "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }, entry)

    def _openai_models(self, entry: Dict[str, Any], ex: _Exchange) -> None:
        models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "text-embedding-3-small", "gpt-3.5-turbo-instruct"]
        self._send_json(200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"} for m in models]}, entry)

    # ---------------------------------------------------------------- Anthropic

    def _anthropic_count_tokens(self, entry: Dict[str, Any], ex: _Exchange) -> None:
        self._send_json(200, {"input_tokens": ex.usage[0]}, entry)

    def _anthropic_messages(self, entry: Dict[str, Any], ex: _Exchange) -> None:
        mid = "msg_" + uuid.uuid4().hex[:24]
        headers = {"request-id": "req_" + uuid.uuid4().hex[:24], "anthropic-organization-id": "fake-org"}
        if not ex.stream:
            return self._send_json(200, {
                "id": mid, "type": "message", "role": "assistant", "model": ex.model,
                "content": [{"type": "text", "text": ex.text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": dict(anthropic_usage(ex.usage), service_tier="standard"),
            }, entry, headers)

        def ev(name: str, obj: Dict[str, Any]) -> bytes:
            return ("event: %s\ndata: %s\n\n" % (name, json.dumps(obj))).encode()

        def events() -> Iterator[bytes]:
            start_out = min(1, ex.usage[1])
            yield ev("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": ex.model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": dict(anthropic_usage(ex.usage, start_out), service_tier="standard")}})
            yield ev("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
            yield ev("ping", {"type": "ping"})
            for piece in _split_text(ex.text):
                yield ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": piece}})
            yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield ev("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": ex.usage[1]}})
            yield ev("message_stop", {"type": "message_stop"})

        self._stream(entry, events(), ex, 4 if ex.scenario == "broken-stream" else None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: Tuple[str, int]) -> None:
        super().__init__(addr, Handler)
        self.lock = threading.Lock()
        self.requests: List[Dict[str, Any]] = []
        self.gates: Dict[str, threading.Event] = {}
        self.defaults: Dict[str, str] = {}

    def gate(self, name: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)):
            return  # a client went away mid-request: normal for abandoned streams
        super().handle_error(request, client_address)


class FakeProvider:
    """Runs the fake provider in a background thread of this process."""

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port))
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "FakeProvider":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def requests(self) -> List[Dict[str, Any]]:
        with self._server.lock:
            return json.loads(json.dumps(self._server.requests))

    def reset(self) -> None:
        with self._server.lock:
            self._server.requests.clear()
            gates, self._server.gates = self._server.gates, {}
        for gate in gates.values():
            gate.set()

    def release(self, gate: str) -> None:
        self._server.gate(gate).set()

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    server = _Server(("127.0.0.1", args.port))

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
