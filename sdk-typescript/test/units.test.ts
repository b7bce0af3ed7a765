/** Units without a daemon: usage, SSE splitting and hiding at every chunk boundary, error mapping
 * through an injected transport, the transport against a scripted socket, spool, lock, options. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import * as sw from '../dist/cjs/index';
import { normalizeAnthropic, normalizeOpenAI, estimateTokens } from '../dist/cjs/internal/usage';
import { EventSplitter, eventEnd, withoutNullUsage } from '../dist/cjs/internal/sse';
import { killInFlight, streamsInFlight } from '../dist/cjs/internal/stream';
import { Spool } from '../dist/cjs/internal/spool';
import { UnixTransport } from '../dist/cjs/internal/transport';
import { errorFromBody } from '../dist/cjs/internal/errors';
import { endpointOf } from '../dist/cjs/internal/fetch';
import { parseDuration, parsePolicy } from '../dist/cjs/internal/daemonconfig';
import { decode, isolateEnv, readAll, sleep, spoolLines, tempDataDir } from './support/harness';

isolateEnv();
const enc = new TextEncoder();

/** A transport that answers like the daemon would, and records what it was asked. */
class ScriptedTransport implements sw.Transport {
  calls: { method: string; path: string; body: any }[] = [];
  constructor(private readonly answer: (path: string, body: any) => sw.TransportResponse | Error) {}
  async request(method: string, path: string, body?: unknown): Promise<sw.TransportResponse> {
    this.calls.push({ method, path, body });
    const a = this.answer(path, body);
    if (a instanceof Error) throw a;
    return a;
  }
}

const allow = (p: string): sw.TransportResponse =>
  p === '/v1/check' ? { status: 200, body: { decision: 'allow', reservation_id: 'r_test', reserved_nanousd: 1, priced: true } } : { status: 200, body: {} };

/** An upstream that sends these exact chunks as an SSE answer. */
function sseUpstream(chunks: Uint8Array[], seen?: { body?: string }): sw.FetchLike {
  return async (_input, init) => {
    if (seen) seen.body = init?.body as string;
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i < chunks.length) c.enqueue(chunks[i++]);
        else c.close();
      },
    });
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  };
}

const CHAT_EVENTS = [
  'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}\n\n',
  'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"héllo wörld ✓"}}],"usage":null}\n\n',
  'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n',
  'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":6,"prompt_tokens_details":{"cached_tokens":10}}}\n\n',
  'data: [DONE]\n\n',
];

test('usage normalisation: OpenAI chat, Responses, embeddings; Anthropic', () => {
  assert.deepEqual(normalizeOpenAI({ prompt_tokens: 130, completion_tokens: 20, prompt_tokens_details: { cached_tokens: 30 }, completion_tokens_details: { reasoning_tokens: 5 } }), {
    input_tokens: 100, output_tokens: 20, cache_read_tokens: 30, cache_write_tokens: 0, reasoning_tokens: 5,
  });
  assert.deepEqual(normalizeOpenAI({ input_tokens: 18, input_tokens_details: { cached_tokens: 8 }, output_tokens: 9, output_tokens_details: { reasoning_tokens: 7 } }), {
    input_tokens: 10, output_tokens: 9, cache_read_tokens: 8, cache_write_tokens: 0, reasoning_tokens: 7,
  });
  assert.equal(normalizeOpenAI({ prompt_tokens: 4, total_tokens: 4 })!.input_tokens, 4);
  assert.equal(normalizeOpenAI(null), undefined);
  assert.equal(normalizeOpenAI({ total_tokens: 3 }), undefined);
  // nonsense is clamped, never negative
  assert.deepEqual(normalizeOpenAI({ prompt_tokens: 5, completion_tokens: -3, prompt_tokens_details: { cached_tokens: 9 } }), {
    input_tokens: 0, output_tokens: 0, cache_read_tokens: 5, cache_write_tokens: 0, reasoning_tokens: 0,
  });
  assert.deepEqual(normalizeAnthropic({ input_tokens: 10, output_tokens: 9, cache_read_input_tokens: 8, cache_creation_input_tokens: 7 }), {
    input_tokens: 10, output_tokens: 9, cache_read_tokens: 8, cache_write_tokens: 7, reasoning_tokens: 0,
  });
  assert.equal(estimateTokens('abcde'), 2);
  assert.equal(estimateTokens('✓'), 1);
});

test('billable endpoints are recognised by their path, whatever the base URL', () => {
  const e = (u: string) => endpointOf(u)?.endpoint;
  assert.equal(e('https://api.openai.com/v1/chat/completions'), '/chat/completions');
  assert.equal(e('http://x/openai/deployments/d/chat/completions?api-version=1'), '/chat/completions');
  assert.equal(e('https://api.openai.com/v1/completions/'), '/completions');
  assert.equal(e('https://api.openai.com/v1/responses'), '/responses');
  assert.equal(e('https://api.openai.com/v1/embeddings'), '/embeddings');
  assert.equal(e('https://api.anthropic.com/v1/messages?beta=true'), '/v1/messages');
  assert.equal(e('https://api.anthropic.com/v1/messages/count_tokens'), undefined);
  assert.equal(e('https://api.anthropic.com/v1/messages/batches'), undefined);
  assert.equal(e('https://api.openai.com/v1/threads/t/messages'), undefined);
  assert.equal(e('https://api.openai.com/v1/responses/resp_1'), undefined);
  assert.equal(e('https://api.openai.com/v1/models'), undefined);
});

test('SSE event ends: LF, CRLF and CR line ends; incomplete events wait', () => {
  const end = (s: string) => eventEnd(enc.encode(s), 0);
  assert.equal(end('data: a\n\nrest'), 9);
  assert.equal(end('data: a\r\n\r\nrest'), 11);
  assert.equal(end('data: a\r\rrest'), 9);
  assert.equal(end('data: a\n'), -1);
  assert.equal(end('data: a\r\n\r'), -1); // the last CR may be followed by LF
  assert.equal(end('event: x\ndata: a\n\n'), 18);
});

test('the splitter yields the same events whatever the chunk boundaries', () => {
  const all = enc.encode(CHAT_EVENTS.join('').replace(/\n\n/g, '\r\n\r\n'));
  const want = CHAT_EVENTS.map((e) => e.replace(/\n\n/g, '\r\n\r\n'));
  for (let a = 0; a <= all.length; a += 7) {
    for (const b of [a, a + 1, a + 2, a + 13]) {
      const cuts = [0, Math.min(a, all.length), Math.min(Math.max(a, b), all.length), all.length];
      const s = new EventSplitter();
      const got: string[] = [];
      for (let i = 0; i < 3; i++) s.push(all.subarray(cuts[i], cuts[i + 1]), (ev) => got.push(decode(ev)));
      assert.deepEqual(got, want, `cuts ${cuts}`);
      assert.equal(s.end().length, 0);
    }
  }
});

test('"usage": null removed only where it is the last key of the data line', () => {
  const w = (s: string) => decode(withoutNullUsage(enc.encode(s)));
  assert.equal(w('data: {"a":1,"usage":null}\n\n'), 'data: {"a":1}\n\n');
  assert.equal(w('data: {"a": 1, "usage": null}\r\n\r\n'), 'data: {"a": 1}\r\n\r\n');
  assert.equal(w('data: {"usage":null,"a":1}\n\n'), 'data: {"usage":null,"a":1}\n\n');
  assert.equal(w('data: {"a":"x,\\"usage\\":null}"}\n\n'), 'data: {"a":"x,\\"usage\\":null}"}\n\n');
});

test('hidden usage chunk at every chunk boundary: the caller gets exactly the stream without it', async () => {
  const all = enc.encode(CHAT_EVENTS.join(''));
  const want = CHAT_EVENTS.filter((_, i) => i !== 3).map((e) => e.replace(',"usage":null}', '}')).join('');
  const t = new ScriptedTransport(allow);
  for (let cut = 1; cut < all.length; cut += 3) {
    const seen: { body?: string } = {};
    const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), fetch: sseUpstream([all.subarray(0, cut), all.subarray(cut)], seen) });
    const res = await f('http://x/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [] }) });
    assert.equal(decode(await readAll(res)), want, `cut at ${cut}`);
    assert.deepEqual(JSON.parse(seen.body!).stream_options, { include_usage: true });
  }
  await sw.flush();
  const reports = t.calls.filter((c) => c.path === '/v1/report');
  assert.ok(reports.length > 10);
  for (const r of reports) {
    assert.deepEqual(r.body.usage, { input_tokens: 20, output_tokens: 6, cache_read_tokens: 10, cache_write_tokens: 0, reasoning_tokens: 0 });
    assert.equal(r.body.outcome, 'ok');
    assert.equal(r.body.reservation_id, 'r_test');
  }
});

test('without hiding, the caller gets the very chunk objects upstream sent', async () => {
  const chunks = CHAT_EVENTS.map((e) => enc.encode(e));
  const f = sw.spendwallFetch({ transport: new ScriptedTransport(allow), dataDir: tempDataDir(), fetch: sseUpstream(chunks) });
  const res = await f('http://x/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: 'gpt-4o', stream: true, stream_options: { include_usage: true } }) });
  const reader = res.body!.getReader();
  for (const c of chunks) assert.equal((await reader.read()).value, c);
  assert.equal((await reader.read()).done, true);
});

test('the check carries provider, model, attribution, mode and the request as sent', async () => {
  const t = new ScriptedTransport(allow);
  const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), agent: 'a', tags: { t: '1' }, session: 's', fetch: async () => new Response('{"usage":{"input_tokens":1,"output_tokens":2}}', { headers: { 'content-type': 'application/json' } }) });
  const request = { model: 'claude-sonnet-4-5', max_tokens: 9, messages: [{ role: 'user', content: 'x' }] };
  await (await f('https://api.anthropic.com/v1/messages', { method: 'POST', body: JSON.stringify(request, null, 2) })).json();
  await sw.flush();
  const [check, report] = t.calls;
  assert.deepEqual(check, {
    method: 'POST',
    path: '/v1/check',
    body: { provider: 'anthropic', model: 'claude-sonnet-4-5', mode: 'default', path: 'sdk', agent: 'a', tags: { t: '1' }, session: 's', request },
  });
  assert.equal(report.path, '/v1/report');
  assert.deepEqual(report.body.usage, { input_tokens: 1, output_tokens: 2, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 });
  assert.equal(report.body.status, 200);
  assert.equal(typeof report.body.duration_ms, 'number');
});

for (const [code, cls] of [
  ['killed', sw.KilledError],
  ['approval_denied', sw.ApprovalDeniedError],
  ['cap_exceeded', sw.BudgetExceededError],
] as const) {
  test(`decision ${code} throws ${cls.name} before anything goes upstream`, async () => {
    let upstreamCalls = 0;
    const t = new ScriptedTransport(() => ({ status: 200, body: { decision: code === 'cap_exceeded' ? 'block' : code, error: { code, message: `no: ${code}` } } }));
    const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), fetch: async () => (upstreamCalls++, new Response('{}')) });
    const err = await f('http://x/v1/responses', { method: 'POST', body: '{"model":"gpt-4o"}' }).then(() => undefined, (e) => e);
    assert.ok(err instanceof cls);
    assert.ok(err instanceof sw.SpendwallError);
    assert.equal((err as sw.SpendwallError).code, code);
    assert.equal((err as sw.SpendwallError).message, `no: ${code}`);
    assert.equal(upstreamCalls, 0);
  });
}

test('daemon answers that are not a decision: 400 throws SpendwallError; 5xx and unreachable fail open (or closed when strict)', async () => {
  const bad = new ScriptedTransport(() => ({ status: 400, body: { error: { code: 'bad_request', message: 'model: expected a string' } } }));
  const up = async () => new Response('{}', { headers: { 'content-type': 'application/json' } });
  const err = await sw.spendwallFetch({ transport: bad, dataDir: tempDataDir(), fetch: up })('http://x/v1/chat/completions', { method: 'POST', body: '{}' }).then(() => undefined, (e) => e);
  assert.ok(err instanceof sw.SpendwallError && !(err instanceof sw.DaemonUnavailableError));
  assert.equal((err as sw.SpendwallError).code, 'bad_request');
  assert.equal((err as sw.SpendwallError).status, 400);

  for (const answer of [{ status: 503, body: { error: { code: 'unavailable', message: 'ledger busy' } } }, new sw.DaemonUnavailableError('down')]) {
    const dataDir = tempDataDir();
    const t = new ScriptedTransport((p) => (p === '/v1/check' ? answer : { status: 200, body: {} }));
    const res = await sw.spendwallFetch({ transport: t, dataDir, fetch: up })('http://x/v1/chat/completions', { method: 'POST', body: '{"model":"m"}' });
    assert.equal(res.status, 200);
    await sw.flush();
    assert.equal(spoolLines(dataDir).length, 1); // no reservation: spooled
    await assert.rejects(
      sw.spendwallFetch({ transport: t, dataDir, fetch: up, strict: true })('http://x/v1/chat/completions', { method: 'POST', body: '{}' }),
      sw.DaemonUnavailableError,
    );
  }
  assert.equal(errorFromBody({ error: { code: 'unknown_reservation', message: 'm' } }, 404).constructor, sw.SpendwallError);
  assert.equal(errorFromBody({ decision: 'killed' }).constructor, sw.KilledError);
});

test('a 503 that says fail_closed throws DaemonUnavailableError even in fail-open mode; a plain 503 still fails open', async () => {
  let upstreamCalls = 0;
  const up = async () => (upstreamCalls++, new Response('{}', { headers: { 'content-type': 'application/json' } }));
  const refusal = { error: { code: 'unavailable', message: 'the ledger cannot record spend right now (busy); refused because policy.fail_mode is "closed"', fail_closed: true } };
  const dataDir = tempDataDir();
  const closed = new ScriptedTransport((p) => (p === '/v1/check' ? { status: 503, body: refusal } : { status: 200, body: {} }));
  const err = await sw.spendwallFetch({ transport: closed, dataDir, fetch: up })('http://x/v1/chat/completions', { method: 'POST', body: '{"model":"m"}' }).then(() => undefined, (e) => e);
  if (!(err instanceof sw.DaemonUnavailableError)) return assert.fail(`expected DaemonUnavailableError, got ${err}`);
  assert.deepEqual([err.reason, err.code, err.status, err.message], ['fail_closed', 'unavailable', 503, refusal.error.message]);
  assert.deepEqual(err.body, refusal);
  assert.equal(upstreamCalls, 0);

  const plain = new ScriptedTransport((p) => (p === '/v1/check' ? { status: 503, body: { error: { code: 'unavailable', message: 'busy' } } } : { status: 200, body: {} }));
  assert.equal((await sw.spendwallFetch({ transport: plain, dataDir, fetch: up })('http://x/v1/chat/completions', { method: 'POST', body: '{"model":"m"}' })).status, 200);
  assert.equal(upstreamCalls, 1);
  await sw.flush();
  assert.equal(spoolLines(dataDir).length, 1);
  // an error built from a refusal body knows it too
  assert.equal(new sw.DaemonUnavailableError('x', { body: refusal }).reason, 'fail_closed');
  assert.equal(new sw.DaemonUnavailableError('x').reason, 'unreachable');
});

test("the daemon's spendwall.toml: [policy] fail_mode and approval_timeout, nothing else", () => {
  assert.deepEqual(parsePolicy(''), { failMode: undefined, approvalTimeoutMs: undefined });
  assert.deepEqual(parsePolicy('[policy]\nfail_mode = "closed"\napproval_timeout = "90s"\n'), { failMode: 'closed', approvalTimeoutMs: 90_000 });
  assert.deepEqual(
    parsePolicy(`# fail_mode = "closed"
fail_mode = "closed"          # a root key, not [policy]'s
[daemon]
fail_mode = "closed"
note = """
[policy]
fail_mode = "closed"
"""
[[cap]]
policy.fail_mode = "closed"
[ policy ]  # spaces and a comment
fail_mode = 'open'            # literal string
approval_timeout = "10m"
default_max_tokens = 4096
[policy.extra]
fail_mode = "closed"
[proxy]
approval_timeout = "1s"
`),
    { failMode: 'open', approvalTimeoutMs: 600_000 },
  );
  assert.deepEqual(parsePolicy('policy.fail_mode = "closed"\npolicy."approval_timeout" = "2h"'), { failMode: 'closed', approvalTimeoutMs: 7_200_000 });
  assert.deepEqual(parsePolicy('[policy]\r\n"fail_mode" = "closed"\r\n'), { failMode: 'closed', approvalTimeoutMs: undefined });
  // malformed values are ignored (the daemon refuses such a file and keeps its last good one)
  assert.deepEqual(parsePolicy('[policy]\nfail_mode = "CLOSED"\napproval_timeout = 300\n'), { failMode: undefined, approvalTimeoutMs: undefined });
  assert.deepEqual(parsePolicy('[policy]\nfail_mode = "closed" trailing\napproval_timeout = "5 m"\n'), { failMode: undefined, approvalTimeoutMs: undefined });
  for (const [text, ms] of [['1s', 1000], ['5m', 300_000], ['1h', 3_600_000], ['2d', 172_800_000], ['0s', undefined], ['1.5m', undefined], ['10ms', undefined], ['m', undefined], ['-1s', undefined]] as const) {
    assert.equal(parseDuration(text), ms, text);
  }
});

test('a report the daemon cannot take (5xx, unknown reservation, gone) is spooled with the reservation id', async () => {
  for (const answer of [{ status: 500, body: {} }, { status: 404, body: { error: { code: 'unknown_reservation', message: 'm' } } }, new sw.DaemonUnavailableError('gone')]) {
    const dataDir = tempDataDir();
    const t = new ScriptedTransport((p) => (p === '/v1/check' ? allow(p) : answer));
    const f = sw.spendwallFetch({ transport: t, dataDir, agent: 'x', fetch: async () => new Response('{"usage":{"prompt_tokens":3}}') });
    await (await f('http://x/v1/embeddings', { method: 'POST', body: '{"model":"e"}' })).text();
    await sw.flush();
    const [item] = spoolLines(dataDir);
    assert.deepEqual([item.id, item.reservation_id, item.agent, item.usage.input_tokens], ['r_test', 'r_test', 'x', 3]);
  }
});

test('kill in flight (the hook the event stream will drive): the stream stops at its next chunk', async () => {
  const t = new ScriptedTransport(allow);
  let push!: (s: string) => void;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      push = (s) => c.enqueue(enc.encode(s));
    },
  });
  const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), agent: 'victim', fetch: async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }) });
  const res = await f('http://x/v1/messages', { method: 'POST', body: '{"model":"claude-x","stream":true}' });
  const reader = res.body!.getReader();
  push('event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}\n\n');
  assert.ok(!(await reader.read()).done);
  assert.equal(streamsInFlight(), 1);
  assert.equal(killInFlight((call) => call.agent === 'victim', 'killed by test'), 1);
  push('event: ping\ndata: {"type":"ping"}\n\n');
  const err = await reader.read().then(() => undefined, (e) => e);
  assert.ok(err instanceof sw.KilledError);
  assert.equal(streamsInFlight(), 0);
  await sw.flush();
  const report = t.calls.find((c) => c.path === '/v1/report')!;
  assert.equal(report.body.outcome, 'killed');
  assert.equal(report.body.usage.input_tokens, 9);
});

test('node-fetch style bodies (Node streams) are tracked too', async () => {
  const t = new ScriptedTransport(allow);
  const events = ['event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":4,"output_tokens":1}}}\n\n', 'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":8}}\n\n', 'event: message_stop\ndata: {"type":"message_stop"}\n\n'];
  const nodeStream = {
    async *[Symbol.asyncIterator]() {
      for (const e of events) yield enc.encode(e);
    },
  };
  const fakeResponse = { ok: true, status: 200, statusText: 'OK', url: 'http://x/v1/messages', redirected: false, headers: new Headers({ 'content-type': 'text/event-stream' }), body: nodeStream };
  const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), fetch: async () => fakeResponse as unknown as Response });
  const res = await f('http://x/v1/messages', { method: 'POST', body: '{"model":"claude-x","stream":true}' });
  assert.equal(await res.text(), events.join(''));
  await sw.flush();
  const report = t.calls.find((c) => c.path === '/v1/report')!;
  assert.deepEqual([report.body.outcome, report.body.usage.input_tokens, report.body.usage.output_tokens], ['ok', 4, 8]);
});

test('options: unknown keys, bad values and malformed configure calls are TypeErrors', () => {
  assert.throws(() => sw.spendwallFetch({ socket: 'x' } as any), TypeError);
  assert.throws(() => sw.configure({ strictt: true } as any), TypeError);
  assert.throws(() => sw.spendwallFetch({ tags: 'a=b' } as any), TypeError);
  assert.throws(() => sw.withAttribution({ mode: 'loose' } as any, () => 1), TypeError);
  assert.throws(() => sw.withAttribution({ team: 'x' } as any, () => 1), TypeError);
  assert.equal(sw.withTags({ a: '1' }, () => 42), 42);
});

test('the transport: keep-alive reuse, one retry on a connection closed while idle, chunked answers, timeouts', async () => {
  const dir = tempDataDir();
  const sockPath = path.join(dir, 'scripted.sock');
  let connections = 0;
  let requests = 0;
  const server = net.createServer((sock) => {
    connections++;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      while (buf.includes('\r\n\r\n')) {
        const i = buf.indexOf('\r\n\r\n');
        const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, i))![1]);
        if (buf.length < i + 4 + len) return;
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4 + len);
        requests++;
        if (head.startsWith('GET /slow')) continue; // never answered
        if (head.startsWith('GET /chunked')) {
          sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n');
        } else if (head.startsWith('GET /close')) {
          sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
          sock.destroy(); // answered, then closed: the next request on it must be retried
        } else {
          sock.write('HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}');
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(sockPath, () => r()));
  try {
    const t = new UnixTransport(sockPath, 300, 300);
    for (let i = 0; i < 5; i++) assert.deepEqual(await t.request('GET', '/x'), { status: 200, body: { ok: true } });
    assert.equal(connections, 1);
    assert.deepEqual(await t.request('GET', '/chunked'), { status: 200, body: { a: 1 } });
    await t.request('GET', '/close');
    await sleep(20);
    assert.deepEqual(await t.request('GET', '/x'), { status: 200, body: { ok: true } });
    assert.equal(connections, 2);
    const many = await Promise.all(Array.from({ length: 20 }, () => t.request('POST', '/x', { big: 'y'.repeat(100_000) })));
    assert.ok(many.every((r) => r.status === 200));
    await assert.rejects(t.request('GET', '/slow'), (e: Error) => e instanceof sw.DaemonUnavailableError && /did not answer/.test(e.message));
    t.close();
    const none = new UnixTransport(path.join(dir, 'none.sock'));
    await assert.rejects(none.request('GET', '/x'), (e: Error) => e instanceof sw.DaemonUnavailableError && /ENOENT/.test(e.message));
  } finally {
    server.close();
  }
  assert.ok(requests >= 28);
});

test('spool: torn lines skipped, private permissions, replay keeps what the daemon did not acknowledge', async () => {
  const dir = path.join(tempDataDir(), 'spool');
  const s = new Spool(dir, 10_000);
  assert.equal(await s.append({ id: 'a' }), true);
  assert.equal(await s.append({ id: 'b' }), true);
  fs.appendFileSync(s.path, '{"id": "c", "us'); // a crash mid-write
  assert.deepEqual((await s.pending()).map((i) => i.id), ['a', 'b']);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(s.path).mode & 0o777, 0o600);
  const counts = await s.replay(async (batch) => batch.filter((i) => i.id === 'a').map((i) => ({ id: i.id, result: 'recorded' })));
  assert.deepEqual(counts, { recorded: 1, duplicate: 0, rejected: 0 });
  assert.deepEqual((await s.pending()).map((i) => i.id), ['b']);
  await assert.rejects(s.replay(async () => { throw new sw.DaemonUnavailableError('down'); }), sw.DaemonUnavailableError);
  assert.deepEqual((await s.pending()).map((i) => i.id), ['b']); // nothing lost
});

test("spool appends wait for another process's flock on spool.lock (the Python SDK's lock)", async () => {
  const dir = path.join(tempDataDir(), 'spool');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // another process holds the lock until its stdin is closed
  const holder = spawn('flock', ['-x', path.join(dir, 'spool.lock'), '-c', 'echo held; cat >/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
  await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
  const s = new Spool(dir, 10_000);
  let released = false;
  const appended = s.append({ id: 'x' }).then((ok) => ({ ok, released }));
  // give the append every chance to (wrongly) go ahead: our own lock child gets to start and try
  await sleep(300);
  assert.equal(fs.existsSync(s.path), false, 'the spool was written while another process held the lock');
  released = true;
  const gone = new Promise<void>((r) => holder.once('exit', () => r()));
  holder.stdin!.end();
  await gone;
  assert.deepEqual(await appended, { ok: true, released: true });
  assert.deepEqual((await s.pending()).map((i) => i.id), ['x']);
});

test('peer dependencies: a clear error naming the missing package', () => {
  for (const [fn, name] of [
    [sw.createSpendwallOpenAI, 'openai'],
    [sw.createSpendwallAnthropic, '@anthropic-ai/sdk'],
  ] as const) {
    let err: unknown;
    try {
      fn({ clientOptions: { apiKey: 'k' } });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof sw.SpendwallError);
    assert.equal((err as sw.SpendwallError).code, 'missing_peer_dependency');
    assert.ok((err as Error).message.includes(`'${name}'`) && (err as Error).message.includes(`npm install ${name}`), (err as Error).message);
  }
});

test('wrapOpenAI / wrapAnthropic wrap the fetch a client holds (once), and refuse clients without one', async () => {
  const t = new ScriptedTransport(allow);
  const upstream = async () => new Response('{"usage":{"prompt_tokens":2,"completion_tokens":1}}', { headers: { 'content-type': 'application/json' } });
  const client: { fetch: sw.FetchLike; baseURL: string } = { fetch: upstream, baseURL: 'http://x/v1' };
  assert.equal(sw.wrapOpenAI(client, { transport: t, dataDir: tempDataDir() }), client);
  assert.notEqual(client.fetch, upstream);
  sw.wrapOpenAI(client, { transport: t, dataDir: tempDataDir(), agent: 'second' }); // replaces, does not stack
  await (await client.fetch.call(undefined, 'http://x/v1/chat/completions', { method: 'POST', body: '{"model":"gpt-4o"}' })).json();
  await sw.flush();
  assert.equal(t.calls.filter((c) => c.path === '/v1/check').length, 1);
  assert.equal(t.calls[0].body.agent, 'second');
  assert.throws(() => sw.wrapAnthropic({}), (e: Error) => e instanceof sw.SpendwallError && /no 'fetch' to wrap/.test(e.message));
});
