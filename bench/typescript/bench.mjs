#!/usr/bin/env node
// What the TypeScript SDK adds to a call, and the daemon round trip alone from Node.
//
//     (cd sdk-typescript && tsc -p tsconfig.json && node scripts/esm-entry.mjs)   # or scripts/test-typescript.sh
//     node bench/typescript/bench.mjs [--calls 2000] [--roundtrips 3000]
//
// Starts its own daemon (SPENDWALL_BIN, else .build/release/spendwall, else .build/debug/spendwall)
// on a temporary socket with two caps (every check reserves against two budgets), and the
// shared fake provider. Node's own fetch, bare and through spendwallFetch, calls the same fake
// in the same run, interleaved call by call (the order alternates), so both see the same
// machine; the figure that matters is wrapped minus bare. A call is timed from fetch() until
// its JSON body is parsed — what an SDK like openai-node waits for. The report to the daemon
// runs in the background after the answer is handed over; it is awaited (untimed) before the
// next call, and timed separately as "including the report".
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const CALLS = arg('--calls', 2000);
const ROUNDTRIPS = arg('--roundtrips', 3000);

const CAPS = `
[[cap]]
name = "bench-global"
scope = { global = true }
window = "1d"
limit_usd = 1000000.0
[[cap]]
name = "bench-per-agent"
scope = { agent = "*" }
window = "1h"
limit_usd = 100000.0
`;

function binary() {
  for (const p of [process.env.SPENDWALL_BIN, join(REPO, '.build/release/spendwall'), join(REPO, '.build/debug/spendwall')]) {
    if (p && existsSync(p)) return p;
  }
  throw new Error('no spendwall binary: run `swift build -c release` or set SPENDWALL_BIN');
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const us = (ns) => ns / 1000;
function summary(name, xs) {
  const row = { p50: us(pct(xs, 50)), p99: us(pct(xs, 99)), mean: us(xs.reduce((a, b) => a + b, 0) / xs.length) };
  console.log(`  ${name.padEnd(40)} p50 ${row.p50.toFixed(1).padStart(8)} µs   p99 ${row.p99.toFixed(1).padStart(8)} µs   mean ${row.mean.toFixed(1).padStart(8)} µs`);
  return row;
}
const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const root = mkdtempSync(join(tmpdir(), 'swbench-ts-'));
const socket = join(root, 'run', 'spendwall.sock');
mkdirSync(join(root, 'config'), { recursive: true });
writeFileSync(join(root, 'config', 'caps.toml'), CAPS);
// the loopback listener (proxy, /metrics) on a free port, so a running daemon never collides
const env = { ...process.env, SPENDWALL_CONFIG_DIR: join(root, 'config'), SPENDWALL_DATA_DIR: join(root, 'data'), SPENDWALL_SOCKET: socket, SPENDWALL_PROXY_ADDR: '127.0.0.1:0', SPENDWALL_LOG_LEVEL: 'warning' };
const bin = binary();
const daemon = spawn(bin, ['daemon'], { env, stdio: 'ignore' });
const fake = spawn('python3', [join(REPO, 'tests/fake_provider/server.py'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((r) => fake.stdout.once('data', (d) => r(Number(String(d).split(' ')[1]))));

try {
  const sw = await import(join(REPO, 'sdk-typescript/dist/index.mjs'));
  const { UnixTransport } = require(join(REPO, 'sdk-typescript/dist/cjs/internal/transport.js'));
  for (let i = 0; ; i++) {
    try {
      if ((await sw.health({ socketPath: socket })).status === 'ok') break;
    } catch (e) {
      if (i > 200) throw e;
      await sleep(50);
    }
  }
  console.log(`daemon ${bin}; node ${process.version}; ${CALLS} calls each`);
  const dataDir = join(root, 'sdk-data');
  const url = `http://127.0.0.1:${port}/v1/chat/completions`;
  const body = JSON.stringify({ model: 'gpt-4o', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello.' }] });
  const init = { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' }, body };
  const bare = (u = url) => fetch(u, init).then((r) => r.json());
  // the SDK's own Unix socket transport, timed: how long the check takes inside the wrapped calls
  const inner = new UnixTransport(socket);
  const inFlow = [];
  const timed = {
    request: (m, p, b) => inner.request(m, p, b),
    async requestText(m, p, json) {
      const t = now();
      const r = await inner.requestText(m, p, json);
      if (p === '/v1/check') inFlow.push(Number(now() - t));
      return r;
    },
  };
  const f = sw.spendwallFetch({ transport: timed, dataDir, agent: 'bench', tags: { bench: 'typescript' } });
  const wrapped = () => f(url, init).then((r) => r.json());

  async function interleaved(a, b, n, afterB = async () => {}) {
    const ta = [];
    const tb = [];
    for (let i = 0; i < n; i++) {
      const order = i % 2 === 0 ? [[a, ta, null], [b, tb, afterB]] : [[b, tb, afterB], [a, ta, null]];
      for (const [fn, out, after] of order) {
        const t = now();
        await fn();
        out.push(Number(now() - t));
        if (after) await after();
      }
    }
    return [ta, tb];
  }

  await interleaved(bare, wrapped, 200, sw.flush); // warm up: connections, JIT, the daemon's windows
  inFlow.length = 0;
  console.log('\nnon-streaming chat completion against the fake provider (Node fetch), same run:');
  const [tb, tw] = await interleaved(bare, wrapped, CALLS, sw.flush);
  const b = summary('bare fetch', tb);
  const w = summary('spendwallFetch (report in background)', tw);
  console.log(`  ${'added by the wrapper'.padEnd(40)} p50 ${(w.p50 - b.p50).toFixed(1).padStart(8)} µs   p99 ${(w.p99 - b.p99).toFixed(1).padStart(8)} µs`);
  summary('of which: the check, as timed inside', inFlow);

  const withReport = async () => {
    await wrapped();
    await sw.flush();
  };
  const [tb2, tw2] = await interleaved(bare, withReport, Math.max(200, CALLS / 2));
  console.log('\nthe same, timed until the report is committed too (as the Python SDK does it):');
  const b2 = summary('bare fetch', tb2);
  const w2 = summary('spendwallFetch + flush()', tw2);
  console.log(`  ${'added'.padEnd(40)} p50 ${(w2.p50 - b2.p50).toFixed(1).padStart(8)} µs   p99 ${(w2.p99 - b2.p99).toFixed(1).padStart(8)} µs`);

  // streaming: the whole stream consumed
  const sbody = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'Say hello.' }] });
  const sinit = { ...init, body: sbody };
  const drain = async (r) => {
    const reader = r.body.getReader();
    while (!(await reader.read()).done);
  };
  const [sb, sw2] = await interleaved(() => fetch(url, sinit).then(drain), () => f(url, sinit).then(drain), Math.max(200, CALLS / 4), sw.flush);
  console.log('\nstreaming chat, whole stream consumed (usage requested and its chunk hidden):');
  const b3 = summary('bare fetch', sb);
  const w3 = summary('spendwallFetch', sw2);
  console.log(`  ${'added by the wrapper'.padEnd(40)} p50 ${(w3.p50 - b3.p50).toFixed(1).padStart(8)} µs`);

  // the same through the SDK's own socket transport: streams register with the kill watch, which
  // subscribes to GET /v1/events (an injected transport, as above, has no watch)
  const fsock = sw.spendwallFetch({ socketPath: socket, dataDir, agent: 'bench', tags: { bench: 'typescript' } });
  const [sb5, ss5] = await interleaved(() => fetch(url, sinit).then(drain), () => fsock(url, sinit).then(drain), Math.max(200, CALLS / 4), sw.flush);
  const { watchFor } = require(join(REPO, 'sdk-typescript/dist/cjs/internal/killwatch.js'));
  const watch = watchFor(new UnixTransport(socket));
  console.log(`\nstreaming chat through the SDK's socket transport (kill watch: ${watch.connects} subscription(s), ${watch.attempts} attempt(s)${watch.connects ? '' : '; this daemon serves no /v1/events'}):`);
  const b5 = summary('bare fetch', sb5);
  const s5 = summary('spendwallFetch, socket transport', ss5);
  console.log(`  ${'added by the wrapper'.padEnd(40)} p50 ${(s5.p50 - b5.p50).toFixed(1).padStart(8)} µs`);

  // diagnostic: the SDK's own cost, with a transport that answers at once (no daemon)
  const instant = {
    async request(method, path, b) {
      JSON.stringify(b);
      return path === '/v1/check' ? { status: 200, body: { decision: 'allow', reservation_id: 'r_x', reserved_nanousd: 1 } } : { status: 200, body: { cost_nanousd: 1 } };
    },
    async requestText(method, path) {
      return this.request(method, path, undefined);
    },
  };
  const fi = sw.spendwallFetch({ transport: instant, dataDir, agent: 'x' });
  const [tb4, ti4] = await interleaved(bare, () => fi(url, init).then((r) => r.json()), CALLS, sw.flush);
  console.log('\ndiagnostic: SDK-side cost alone (transport answers at once, no daemon):');
  const b4 = summary('bare fetch', tb4);
  const i4 = summary('spendwallFetch, instant transport', ti4);
  console.log(`  ${'SDK-side cost'.padEnd(40)} p50 ${(i4.p50 - b4.p50).toFixed(1).padStart(8)} µs   p99 ${(i4.p99 - b4.p99).toFixed(1).padStart(8)} µs`);

  // the daemon round trip alone, from Node, on the SDK's transport
  const t = new UnixTransport(socket);
  const check = { provider: 'openai', model: 'gpt-4o', agent: 'bench-rt', mode: 'default', path: 'sdk', request: JSON.parse(body) };
  const usage = { input_tokens: 11, output_tokens: 7, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 };
  const rc = [];
  const rr = [];
  const rh = [];
  for (let i = 0; i < ROUNDTRIPS; i++) {
    const t0 = now();
    const { body: a } = await t.request('POST', '/v1/check', check);
    const t1 = now();
    await t.request('POST', '/v1/report', { reservation_id: a.reservation_id, usage, status: 200, duration_ms: 1, outcome: 'ok' });
    const t2 = now();
    await t.request('GET', '/v1/health');
    rh.push(Number(now() - t2));
    rc.push(Number(t1 - t0));
    rr.push(Number(t2 - t1));
  }
  t.close();
  console.log(`\ndaemon round trip from Node (the SDK's transport, keep-alive), ${ROUNDTRIPS} each:`);
  summary('POST /v1/check', rc);
  summary('POST /v1/report (until committed)', rr);
  summary('GET /v1/health', rh);
} finally {
  daemon.kill('SIGTERM');
  fake.kill('SIGTERM');
  await sleep(200);
  rmSync(root, { recursive: true, force: true });
}
process.exit(0);
