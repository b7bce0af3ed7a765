/**
 * Kill in flight: a stream in progress stops at its next chunk when its scope is killed, driven by
 * the daemon's event stream (GET /v1/events), against the real daemon and the fake provider. Bad
 * paths (a daemon without the endpoint, a dropped event stream, a daemon restart) leave calls
 * unaffected and the subscription reconnects; the subscription never keeps Node running.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as sw from '../dist/cjs/index';
import { KillWatch, stopAllWatches, tuning, watchFor } from '../dist/cjs/internal/killwatch';
import { UnixTransport } from '../dist/cjs/internal/transport';
import { Daemon, Fake, SDK_ROOT, isolateEnv, newAgent, readAll, sleep, tempDataDir, type Row } from './support/harness';

let daemon: Daemon;
let fake: Fake;
const MSG = [{ role: 'user', content: 'hi' }];
const DELAY_MS = 400; // between chunks of the fake's slow stream: 8 events, ~2.8 s in all
const SLOW = { 'x-fake-scenario': 'slow-stream', 'x-fake-delay-ms': String(DELAY_MS) };
const saved = { ...tuning };

before(async () => {
  isolateEnv();
  daemon = await new Daemon('').start();
  fake = await new Fake().start();
});

after(async () => {
  await sw.flush();
  stopAllWatches();
  await fake.stop();
  await daemon.cleanup();
});

function restoreTuning(): void {
  Object.assign(tuning, saved);
}

async function kill(d: Daemon, scope: object, on = true): Promise<void> {
  const r = await d.request('POST', '/v1/kill', { ...scope, on });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

async function waitFor(pred: () => boolean, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}

function watchOf(socketPath: string): KillWatch {
  return watchFor(new UnixTransport(socketPath))!;
}

/**
 * Turns a switch on and waits until this process's watch has it: the streams it covers are then
 * marked, and stop at the very next chunk their caller reads (no race with the provider's pace).
 */
async function killSeen(d: Daemon, scope: { agent?: string; session?: string }): Promise<void> {
  await kill(d, scope);
  const kind = scope.agent !== undefined ? 'agent' : scope.session !== undefined ? 'session' : 'global';
  const value = scope.agent ?? scope.session;
  const w = watchOf(d.socket);
  await waitFor(() => w.active().some((s) => s.kind === kind && s.value === value));
}

function chat(f: sw.FetchLike, headers: Record<string, string> = SLOW): Promise<Response> {
  return f(fake.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: MSG }),
  });
}

async function fullLength(): Promise<number> {
  const res = await fetch(fake.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: MSG }),
  });
  return (await readAll(res)).length;
}

/** Reads a stream, running `flip` after `killAfter` reads; returns the reads, the bytes and the error. */
async function readUntilKilled(res: Response, killAfter: number, flip: () => Promise<void>): Promise<{ reads: number; bytes: number; err: unknown }> {
  const reader = res.body!.getReader();
  let reads = 0;
  let bytes = 0;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) return { reads, bytes, err: undefined };
      reads++;
      bytes += r.value!.length;
      if (reads === killAfter) await flip();
    }
  } catch (e) {
    return { reads, bytes, err: e };
  }
}

test('an agent kill stops its stream at the next chunk; another agent streams on; one ledger row', async () => {
  const agent = newAgent();
  const bystander = agent + '-by';
  const full = await fullLength();
  const dataDir = tempDataDir();
  const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir, agent });
  const fb = sw.spendwallFetch({ socketPath: daemon.socket, dataDir, agent: bystander });
  const other = chat(fb).then(readAll);
  let out;
  try {
    out = await readUntilKilled(await chat(f), 2, () => killSeen(daemon, { agent }));
  } finally {
    await kill(daemon, { agent }, false);
  }
  assert.ok(out.err instanceof sw.KilledError, String(out.err));
  assert.ok(out.err instanceof sw.SpendwallError);
  const err = out.err as sw.KilledError;
  assert.equal(err.code, 'killed');
  assert.equal(err.inFlight, true);
  assert.deepEqual(err.scope, { kind: 'agent', value: agent });
  assert.equal(out.reads, 2); // not one chunk more after the switch
  assert.ok(out.bytes < full, `${out.bytes} < ${full}`);
  assert.equal((await other).length, full); // the other agent's stream ran to its end
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.equal(row.outcome, 'killed');
  assert.equal(row.status, 200);
  assert.ok(row.input_tokens > 0 && row.output_tokens > 0); // usage so far + estimate of the text
  assert.match(row.reservation_id, /^r_/);
  await sleep(300);
  assert.equal((await daemon.rows(agent)).length, 1);
  const [byRow] = await daemon.rows(bystander, 1);
  assert.equal(byRow.outcome, 'ok');
});

test('a session kill stops an Anthropic stream; the same agent in another session is unaffected', async () => {
  const agent = newAgent();
  const session = 's-' + newAgent();
  const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir: tempDataDir(), agent });
  const messages = (s: string) =>
    f(fake.url + '/v1/messages', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-spendwall-session': s, ...SLOW },
      body: JSON.stringify({ model: 'claude-opus-4-5', max_tokens: 64, stream: true, messages: MSG }),
    });
  const other = messages(session + '-other').then(readAll);
  let out;
  try {
    out = await readUntilKilled(await messages(session), 2, () => killSeen(daemon, { session }));
  } finally {
    await kill(daemon, { session }, false);
  }
  assert.ok(out.err instanceof sw.KilledError);
  assert.deepEqual((out.err as sw.KilledError).scope, { kind: 'session', value: session });
  assert.ok((await other).length > out.bytes);
  await sw.flush();
  const rows = await daemon.rows(agent, 2);
  const bySession: Record<string, Row> = {};
  for (const r of rows) bySession[r.session] = r;
  assert.equal(rows.length, 2);
  assert.equal(bySession[session].outcome, 'killed');
  assert.ok(bySession[session].input_tokens > 0); // from message_start
  assert.equal(bySession[session + '-other'].outcome, 'ok');
});

test('the global switch stops streams in flight, then refuses checks until it is off', async () => {
  const agent = newAgent();
  const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir: tempDataDir(), agent });
  try {
    const out = await readUntilKilled(await chat(f), 1, () => killSeen(daemon, {}));
    assert.ok(out.err instanceof sw.KilledError);
    assert.deepEqual((out.err as sw.KilledError).scope, { kind: 'global' });
    await sw.flush(); // the stream's report first, for the order of the rows below
    const refused = await chat(f, {}).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(refused instanceof sw.KilledError);
    assert.equal((refused as sw.KilledError).inFlight, false);
  } finally {
    await kill(daemon, {}, false);
  }
  assert.ok((await readAll(await chat(f, {}))).length > 0); // off: streams run again
  await sw.flush();
  const rows = await daemon.rows(agent, 3);
  assert.deepEqual(
    rows.map((r) => [r.outcome, typeof r.reservation_id]),
    [
      ['killed', 'string'],
      ['killed', 'undefined'], // the refused check: the daemon records it, with no reservation
      ['ok', 'string'],
    ],
  );
});

test('stale switches never kill a later call; an event older than the snapshot is skipped', async () => {
  const agent = newAgent();
  await kill(daemon, { agent });
  try {
    const w = new KillWatch(daemon.socket);
    const tracker = (timeMs: number) => ({ call: { agent, session: undefined, app: undefined, timeMs }, killedBy: undefined as unknown });
    const old = tracker(0);
    const later = tracker(Date.now() + 1000);
    w.register(old as any);
    w.register(later as any);
    await w.whenSeeded();
    assert.deepEqual(w.active(), [{ kind: 'agent', value: agent }]);
    assert.ok(old.killedBy instanceof sw.KilledError);
    assert.equal(later.killedBy, undefined);
    w.apply({ scope: { kind: 'agent', value: agent }, on: false, time_ms: 1 });
    assert.deepEqual(w.active(), [{ kind: 'agent', value: agent }]);
    w.stop();
  } finally {
    await kill(daemon, { agent }, false);
  }
});

test('the subscription reconnects after a daemon restart', async () => {
  tuning.backoffMax = 500;
  const d = await new Daemon('').start();
  try {
    const agent = newAgent();
    const f = sw.spendwallFetch({ socketPath: d.socket, dataDir: tempDataDir(), agent });
    assert.ok((await readAll(await chat(f, {}))).length > 0);
    const w = watchOf(d.socket);
    await waitFor(() => w.connected && w.seeded);
    const first = w.connects;
    await d.stop();
    await waitFor(() => !w.connected);
    await d.start(); // same socket
    await waitFor(() => w.connects > first && w.seeded);
    const out = await readUntilKilled(await chat(f), 1, () => killSeen(d, { agent }));
    assert.ok(out.err instanceof sw.KilledError);
    await sw.flush();
    assert.deepEqual((await d.rows(agent, 2)).map((r) => r.outcome), ['ok', 'killed']);
  } finally {
    restoreTuning();
    watchOf(d.socket).stop();
    await d.cleanup();
  }
});

test('the subscription closes when nothing is in flight for a while, and reopens', async () => {
  tuning.linger = 200;
  try {
    const agent = newAgent();
    const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir: tempDataDir(), agent });
    await readAll(await chat(f, {}));
    const w = watchOf(daemon.socket);
    await waitFor(() => !w.connected && w.inFlight() === 0);
    const out = await readUntilKilled(await chat(f), 1, () => killSeen(daemon, { agent }));
    await kill(daemon, { agent }, false);
    assert.ok(out.err instanceof sw.KilledError);
  } finally {
    restoreTuning();
  }
});

// ------------------------------------------------------------------------------------ fake daemons

/**
 * A stand-in daemon on a Unix socket: allows every check, takes every report, and serves
 * GET /v1/events with `events` (given the connection number and the socket), or 404 when it is
 * undefined — a daemon from before the event stream.
 */
class FakeDaemon {
  readonly path: string;
  readonly requests: { method: string; path: string; body: any }[] = [];
  eventConnections = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(readonly events?: (n: number, sock: net.Socket) => void) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swtk-'));
    this.path = path.join(root, 'fake-daemon.sock');
    this.server = net.createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      let buf: NodeBuffer = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.toString('latin1', 0, end);
          const m = /content-length:\s*(\d+)/i.exec(head);
          const len = m ? Number(m[1]) : 0;
          if (buf.length < end + 4 + len) return;
          const text = buf.toString('utf8', end + 4, end + 4 + len);
          buf = buf.subarray(end + 4 + len);
          const [method, target] = head.split(' ');
          const body = text ? JSON.parse(text) : undefined;
          this.requests.push({ method, path: target, body });
          if (target.startsWith('/v1/events') && this.events) {
            this.events(++this.eventConnections, sock);
            return;
          }
          const [status, answer] = this.answer(target.split('?')[0], body);
          const payload = JSON.stringify(answer);
          sock.write(`HTTP/1.1 ${status} X\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
        }
      });
      sock.on('error', () => undefined);
    });
  }

  listen(): Promise<this> {
    return new Promise((r) => this.server.listen(this.path, () => r(this)));
  }

  answer(p: string, body: any): [number, object] {
    if (p === '/v1/check') return [200, { decision: 'allow', reservation_id: 'r_' + newAgent(), reserved_nanousd: 1 }];
    if (p === '/v1/report') return [200, { request_id: body.reservation_id, cost_nanousd: 1, duplicate: false }];
    if (p === '/v1/kill' && this.events) return [200, { on: [], flips: [] }];
    return [404, { error: { code: 'not_found', message: `no ${p}` } }];
  }

  reports(): any[] {
    return this.requests.filter((r) => r.path === '/v1/report').map((r) => r.body);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;

function sseHead(sock: net.Socket): void {
  sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n' + chunk(': spendwall events\n\n'));
}

function killEvent(n: number, scope: object): string {
  const t = Date.now();
  const data = { id: n, kind: 'KillSwitch', time_ms: t, data: { scope, on: true, time_ms: t, by: { pid: 1, uid: 0, exe: '/x' } } };
  return `id: ${n}\nevent: KillSwitch\ndata: ${JSON.stringify(data)}\n\n`;
}

test('a daemon without the events endpoint: calls unaffected, the subscription retried', async () => {
  tuning.noEventsBackoff = 100;
  const fd = await new FakeDaemon().listen();
  try {
    const f = sw.spendwallFetch({ socketPath: fd.path, dataDir: tempDataDir(), agent: newAgent() });
    const body = await readAll(await chat(f, { 'x-fake-scenario': 'slow-stream', 'x-fake-delay-ms': '150' }));
    assert.equal(body.length, await fullLength());
    const w = watchOf(fd.path);
    await waitFor(() => w.attempts >= 3);
    assert.equal(w.connects, 0);
    await sw.flush();
    assert.deepEqual(fd.reports().map((r) => r.outcome), ['ok']);
    w.stop();
  } finally {
    restoreTuning();
    await fd.close();
  }
});

test('a dropped event stream reconnects; events split anywhere across chunks are parsed', async () => {
  tuning.backoffMin = 50;
  const agent = newAgent();
  const fd = await new FakeDaemon((n, sock) => {
    sseHead(sock);
    if (n < 3) {
      setTimeout(() => sock.destroy(), 50); // dropped, with no terminating chunk
      return;
    }
    const ev = ': keepalive\n\n' + killEvent(7, { kind: 'agent', value: agent }) + ': keepalive\n\n';
    const parts = [ev.slice(0, 5), ev.slice(5, 40), ev.slice(40, 41), ev.slice(41)];
    setTimeout(async () => {
      for (const p of parts) {
        sock.write(chunk(p));
        await sleep(10);
      }
    }, 300);
  }).listen();
  try {
    const f = sw.spendwallFetch({ socketPath: fd.path, dataDir: tempDataDir(), agent });
    const out = await readUntilKilled(await chat(f), 100, async () => undefined); // no flip: the third connection says it
    assert.ok(out.err instanceof sw.KilledError, String(out.err));
    assert.deepEqual((out.err as sw.KilledError).scope, { kind: 'agent', value: agent });
    assert.ok(fd.eventConnections >= 3);
    await sw.flush();
    assert.deepEqual(fd.reports().map((r) => r.outcome), ['killed']);
    // the fake never turns the switch off, but a check it allowed after the flip means the switch
    // no longer covered the call: a stale "on" never kills a later call
    assert.ok((await readAll(await chat(f, {}))).length > 0);
    watchOf(fd.path).stop();
  } finally {
    restoreTuning();
    await fd.close();
  }
});

test('the subscription never keeps the Node process alive', async () => {
  const dist = path.join(SDK_ROOT, 'dist', 'cjs');
  const script = path.join(tempDataDir(), 'child.js');
  fs.writeFileSync(
    script,
    `const sw = require(${JSON.stringify(path.join(dist, 'index.js'))});
const { watchFor } = require(${JSON.stringify(path.join(dist, 'internal', 'killwatch.js'))});
const { UnixTransport } = require(${JSON.stringify(path.join(dist, 'internal', 'transport.js'))});
// an hour: a subscription that held the process would hold it far past the test's watchdog
require(${JSON.stringify(path.join(dist, 'internal', 'killwatch.js'))}).tuning.linger = 3_600_000;
(async () => {
  const f = sw.spendwallFetch({ socketPath: ${JSON.stringify(daemon.socket)}, dataDir: ${JSON.stringify(tempDataDir())}, agent: 'child' });
  const res = await f(${JSON.stringify(fake.url + '/v1/chat/completions')}, { method: 'POST', headers: { 'x-fake-scenario': 'slow-stream', 'x-fake-delay-ms': '100' },
    body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  const reader = res.body.getReader();
  await reader.read();
  const w = watchFor(new UnixTransport(${JSON.stringify(daemon.socket)}));
  await w.whenSeeded();
  console.log('subscribed ' + w.connected);
  while (!(await reader.read()).done);
  await sw.flush();
  console.log('done, subscribed ' + w.connected);
})();
`,
  );
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: NodeBuffer) => (out += d.toString()));
  // a watchdog, not a speed limit: with the linger above, a ref'd subscription never lets go in time
  let stuck = false;
  const watchdog = setTimeout(() => {
    stuck = true;
    child.kill('SIGKILL');
  }, 30_000);
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  clearTimeout(watchdog);
  assert.ok(!stuck, `the child never exited by itself; it printed: ${out}`);
  assert.equal(code, 0);
  assert.match(out, /^subscribed true$/m);
  assert.match(out, /^done, subscribed true$/m); // the subscription was still open when the work was done
});
