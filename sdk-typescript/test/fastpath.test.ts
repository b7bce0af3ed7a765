/**
 * The per-call fast paths, without a daemon: the transport's one timer per connection and its
 * header parsing, the spool looked at once a second (at once after this process spooled), the
 * attribution merged once per configure(), headers forwarded uncopied, the JSON answer's usage
 * read from its clone after the caller's turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import * as sw from '../dist/cjs/index';
import { UnixTransport } from '../dist/cjs/internal/transport';
import { spoolLook } from '../dist/cjs/internal/runtime';
import { isolateEnv, sleep, spoolFile, spoolLines, tempDataDir } from './support/harness';

isolateEnv();

/** A transport that answers like the daemon would, and records what it was asked. */
class ScriptedTransport implements sw.Transport {
  calls: { method: string; path: string; body: any }[] = [];
  constructor(private readonly answer: (path: string, body: any) => sw.TransportResponse | Error) {}
  async request(method: string, path: string, body?: unknown): Promise<sw.TransportResponse> {
    this.calls.push({ method, path, body: body === undefined ? undefined : JSON.parse(JSON.stringify(body)) });
    const a = this.answer(path, body);
    if (a instanceof Error) throw a;
    return a;
  }
}

const CHECK_OK = { status: 200, body: { decision: 'allow', reservation_id: 'r_test', reserved_nanousd: 1 } };
const jsonUpstream = (usage = { prompt_tokens: 5, completion_tokens: 2 }) => async () =>
  new Response(JSON.stringify({ id: 'c', choices: [], usage }), { headers: { 'content-type': 'application/json' } });
const chat = (f: sw.FetchLike, init: RequestInit = {}) =>
  f('http://x/v1/chat/completions', { method: 'POST', body: '{"model":"gpt-4o","messages":[]}', ...init });

/** A scripted daemon on a Unix socket: each request path says how to answer. */
async function scriptedServer(answer: (head: string, sock: net.Socket) => void): Promise<{ sockPath: string; connections: () => number; close: () => void }> {
  const sockPath = path.join(tempDataDir(), 's.sock');
  let connections = 0;
  const server = net.createServer((sock) => {
    connections++;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, i))![1]);
        if (buf.length < i + 4 + len) return;
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4 + len);
        answer(head, sock);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(sockPath, () => r()));
  return { sockPath, connections: () => connections, close: () => server.close() };
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}';

function delayed(head: string, sock: net.Socket): boolean {
  const m = /^GET \/delay(\d+)/.exec(head);
  if (!m) return false;
  setTimeout(() => sock.destroyed || sock.write(OK), Number(m[1]));
  return true;
}

test('transport time limits: one timer per connection never cuts a later request short; extensions; timeouts', async () => {
  const server = await scriptedServer((head, sock) => {
    if (head.startsWith('GET /slow')) return; // never answered
    if (delayed(head, sock)) return;
    sock.write(OK);
  });
  try {
    const t = new UnixTransport(server.sockPath, 300, 300);
    assert.deepEqual(await t.request('GET', '/x'), { status: 200, body: { ok: true } }); // arms the connection's timer
    await sleep(200);
    // answered 450 ms after the timer was armed, 250 ms after this request began: within its limit
    assert.deepEqual(await t.request('GET', '/delay250'), { status: 200, body: { ok: true } });
    assert.equal(server.connections(), 1);
    for (let i = 0; i < 50; i++) await t.request('GET', '/x'); // back to back: no timer each
    assert.equal(server.connections(), 1);

    let started = Date.now();
    await assert.rejects(t.request('GET', '/slow'), (e: Error) => e instanceof sw.DaemonUnavailableError && e.reason === 'timeout' && /did not answer GET \/slow within 300 ms/.test(e.message));
    assert.ok(Date.now() - started >= 290, `timed out after ${Date.now() - started} ms`);
    // the timed-out connection is gone; the next request opens a fresh one
    assert.deepEqual(await t.request('GET', '/x'), { status: 200, body: { ok: true } });
    assert.equal(server.connections(), 2);

    // a request that may wait longer (a check held for an approval) is given its longer limit,
    // asked for only once the base limit has passed
    let asked = 0;
    const extendTimeout = () => (asked++, 700);
    assert.deepEqual(await t.request('GET', '/x', undefined, { extendTimeout }), { status: 200, body: { ok: true } });
    assert.equal(asked, 0);
    assert.deepEqual(await t.request('GET', '/delay500', undefined, { extendTimeout }), { status: 200, body: { ok: true } });
    assert.equal(asked, 1);
    started = Date.now();
    await assert.rejects(t.request('GET', '/slow', undefined, { extendTimeout }), (e: Error) => e instanceof sw.DaemonUnavailableError && e.reason === 'timeout' && /within 700 ms/.test(e.message));
    assert.ok(Date.now() - started >= 690, `timed out after ${Date.now() - started} ms`);
    // an extension no longer than the base limit changes nothing
    started = Date.now();
    await assert.rejects(t.request('GET', '/slow', undefined, { extendTimeout: () => 100 }), /within 300 ms/);
    assert.ok(Date.now() - started < 690);
    t.close();
  } finally {
    server.close();
  }
});

test('transport: a request in flight keeps the process alive until its answer or its time limit (the timer is unref\'d)', async () => {
  const server = await scriptedServer((head, sock) => {
    if (head.startsWith('GET /slow')) return;
    if (delayed(head, sock)) return;
    sock.write(OK);
  });
  try {
    const transport = path.resolve(__dirname, '..', 'dist', 'cjs', 'internal', 'transport.js');
    const script = (p: string) =>
      `const { UnixTransport } = require(${JSON.stringify(transport)});` +
      `new UnixTransport(${JSON.stringify(server.sockPath)}, 400, 400).request('GET', '${p}')` +
      `.then((r) => console.log('answer', JSON.stringify(r.body)), (e) => console.log('error', e.reason));`;
    const run = (p: string) =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, ['-e', script(p)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        child.on('exit', () => resolve(out.trim()));
      });
    assert.equal(await run('/delay200'), 'answer {"ok":true}');
    assert.equal(await run('/slow'), 'error timeout');
  } finally {
    server.close();
  }
});

test("transport: answers' headers in any case and spacing; Connection: close and HTTP/1.0 end the connection", async () => {
  const answers: Record<string, string> = {
    '/mixed': 'HTTP/1.1 200 OK\r\nX-Note: a:b\r\nCONTENT-length :  9 \r\ncontent-type: application/json\r\n\r\n{"m":"x"}',
    '/close': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Close\r\n\r\n{}',
    '/http10': 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}',
    '/http10ka': 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}',
    '/chunked': 'HTTP/1.1 201 Created\r\ntransfer-encoding: Chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n',
    '/nocontent': 'HTTP/1.1 204 No Content\r\n\r\n',
  };
  const server = await scriptedServer((head, sock) => {
    const p = head.split(' ')[1];
    sock.write(answers[p] ?? OK);
    if (p === '/close' || p === '/http10') sock.end();
  });
  try {
    const t = new UnixTransport(server.sockPath, 1000, 1000);
    assert.deepEqual(await t.request('GET', '/mixed'), { status: 200, body: { m: 'x' } });
    assert.deepEqual(await t.request('GET', '/chunked'), { status: 201, body: { a: 1 } });
    assert.deepEqual(await t.request('GET', '/nocontent'), { status: 204, body: {} });
    assert.deepEqual(await t.request('GET', '/http10ka'), { status: 200, body: {} });
    assert.equal(server.connections(), 1); // all kept alive
    assert.deepEqual(await t.request('GET', '/close'), { status: 200, body: {} });
    assert.deepEqual(await t.request('GET', '/x'), { status: 200, body: { ok: true } });
    assert.equal(server.connections(), 2);
    assert.deepEqual(await t.request('GET', '/http10'), { status: 200, body: {} });
    assert.deepEqual(await t.request('GET', '/x'), { status: 200, body: { ok: true } });
    assert.equal(server.connections(), 3);
    t.close();
  } finally {
    server.close();
  }
});

test('the spool is looked at once per interval after answered checks, and at once after this process spooled', async () => {
  const saved = spoolLook.intervalMs;
  spoolLook.intervalMs = 3_600_000;
  const dataDir = tempDataDir();
  let failReports = false;
  const replayed: string[] = [];
  const t = new ScriptedTransport((p, body) => {
    if (p === '/v1/check') return CHECK_OK;
    if (p === '/v1/report') return failReports ? { status: 500, body: {} } : { status: 200, body: {} };
    if (p === '/v1/reports') {
      replayed.push(...body.reports.map((r: any) => r.id));
      return { status: 200, body: { results: body.reports.map((r: any) => ({ id: r.id, result: 'recorded' })) } };
    }
    return { status: 404, body: {} };
  });
  const f = sw.spendwallFetch({ transport: t, dataDir, fetch: jsonUpstream() });
  const call = async () => {
    await (await chat(f)).json();
    await sw.flush();
  };
  try {
    await call(); // the first answered check looks: nothing there
    // another process spools a report: not looked for until the interval has passed
    fs.mkdirSync(path.dirname(spoolFile(dataDir)), { recursive: true, mode: 0o700 });
    fs.writeFileSync(spoolFile(dataDir), JSON.stringify({ id: 'other-1', reservation_id: null, provider: 'openai', model: 'm', usage: {} }) + '\n');
    await call();
    assert.deepEqual(replayed, []);
    spoolLook.intervalMs = 0;
    await call();
    assert.deepEqual(replayed, ['other-1']);
    assert.deepEqual(spoolLines(dataDir), []);

    // this process spools one (the daemon cannot take the report): the next answered check replays it at once
    spoolLook.intervalMs = 3_600_000;
    failReports = true;
    await call();
    failReports = false;
    assert.deepEqual(spoolLines(dataDir).map((i) => i.id), ['r_test']);
    await call();
    assert.deepEqual(replayed, ['other-1', 'r_test']);
    assert.deepEqual(spoolLines(dataDir), []);
  } finally {
    spoolLook.intervalMs = saved;
  }
});

test('attribution: configure() between calls of one fetch applies; a transport changing a check body changes no later call', async () => {
  const t = new ScriptedTransport((p, body) => {
    if (p === '/v1/check') {
      body.tags.spoiled = 'yes'; // a transport that changes what it was given
      body.agent = 'spoiled';
      return CHECK_OK;
    }
    return { status: 200, body: {} };
  });
  const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), tags: { own: '1' }, fetch: jsonUpstream() });
  const checks = () => t.calls.filter((c) => c.path === '/v1/check').map((c) => [c.body.agent, c.body.tags, c.body.session]);
  try {
    await (await chat(f)).json();
    await (await chat(f)).json(); // the same attribution as the first call's: unspoiled
    sw.configure({ agent: 'conf', tags: { env: 'x', own: '0' } });
    await (await chat(f)).json();
    await sw.withAttribution({ session: 's1', tags: { blk: '1' } }, async () => {
      await (await chat(f, { headers: { 'X-SpendWall-Agent': 'hdr', 'content-type': 'application/json' } })).json();
    });
    sw.configure({ agent: null, tags: null });
    await (await chat(f)).json();
    await sw.flush();
  } finally {
    sw.configure({ agent: null, tags: null });
  }
  assert.deepEqual(checks(), [
    [undefined, { own: '1' }, undefined],
    [undefined, { own: '1' }, undefined],
    ['conf', { env: 'x', own: '1' }, undefined],
    ['hdr', { env: 'x', own: '1', blk: '1' }, 's1'],
    [undefined, { own: '1' }, undefined],
  ]);
});

test('headers without ours are forwarded as given (not copied); ours are taken in any case', async () => {
  const seen: (RequestInit | undefined)[] = [];
  const t = new ScriptedTransport((p) => (p === '/v1/check' ? CHECK_OK : { status: 200, body: {} }));
  const up = jsonUpstream();
  const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), fetch: async (_i, init) => (seen.push(init), up()) });
  const plain = { method: 'POST', body: '{"model":"gpt-4o"}', headers: { 'content-type': 'application/json', 'Content-Length': '18' } };
  await (await f('http://x/v1/chat/completions', plain)).json();
  assert.equal(seen[0], plain);
  const undef = { method: 'POST', body: '{"model":"gpt-4o"}', headers: { 'x-spendwall-agent': undefined as unknown as string } };
  await (await f('http://x/v1/chat/completions', undef)).json();
  assert.equal(seen[1], undef); // an undefined value is no header
  await (await f('http://x/v1/chat/completions', { method: 'POST', body: '{"model":"gpt-4o"}', headers: { Accept: 'application/json', 'X-SPENDWALL-SESSION': 'S' } })).json();
  assert.deepEqual(seen[2]!.headers, [['Accept', 'application/json']]);
  await sw.flush();
  assert.equal(t.calls.filter((c) => c.path === '/v1/check')[2].body.session, 'S');
});

test("a JSON answer's usage is read from its clone after the caller's turn: read, unread or dropped, it is reported", async () => {
  const t = new ScriptedTransport((p) => (p === '/v1/check' ? CHECK_OK : { status: 200, body: {} }));
  const f = sw.spendwallFetch({ transport: t, dataDir: tempDataDir(), fetch: jsonUpstream({ prompt_tokens: 9, completion_tokens: 4 }) });
  const reports = () => t.calls.filter((c) => c.path === '/v1/report').map((c) => [c.body.outcome, c.body.usage.input_tokens, c.body.usage.output_tokens]);
  const res = await chat(f);
  assert.equal(reports().length, 0);
  assert.deepEqual((await res.json()).usage, { prompt_tokens: 9, completion_tokens: 4 });
  await chat(f); // never read by the caller
  await sw.flush();
  assert.deepEqual(reports(), [
    ['ok', 9, 4],
    ['ok', 9, 4],
  ]);
});
