#!/usr/bin/env node
// Two builds of the TypeScript SDK in the same run, call by call: what a change to the SDK
// changes, on a machine too noisy for two separate runs of bench.mjs to be compared.
//
//     cp -r sdk-typescript/dist /tmp/dist-before        # before the change (built)
//     (cd sdk-typescript && tsc -p tsconfig.json && node scripts/esm-entry.mjs)   # after it
//     node bench/typescript/ab.mjs --base /tmp/dist-before [--calls 2000]
//
// Starts its own daemon (as bench.mjs: SPENDWALL_BIN, two caps) and the shared fake provider.
// Each round calls bare fetch, the base build's spendwallFetch and the current build's, in a
// rotating order; the wrapped calls use the SDK's own socket transport, and each report is
// awaited (untimed) before the next call. Then the same with a transport that answers at once
// (the SDK's own work alone), and a streaming chat read to its end.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = process.argv;
const arg = (name, dflt) => {
  const i = argv.indexOf(name);
  return i > 0 ? argv[i + 1] : dflt;
};
const CALLS = Number(arg('--calls', 2000));
const BASE = arg('--base', undefined);
if (!BASE) throw new Error('--base DIR: a built dist/ of the SDK to compare with');

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
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const root = mkdtempSync(join(tmpdir(), 'swbench-ab-'));
const socket = join(root, 'run', 'spendwall.sock');
mkdirSync(join(root, 'config'), { recursive: true });
writeFileSync(join(root, 'config', 'caps.toml'), CAPS);
const env = { ...process.env, SPENDWALL_CONFIG_DIR: join(root, 'config'), SPENDWALL_DATA_DIR: join(root, 'data'), SPENDWALL_SOCKET: socket, SPENDWALL_PROXY_ADDR: '127.0.0.1:0', SPENDWALL_LOG_LEVEL: 'warning' };
const bin = binary();
const daemon = spawn(bin, ['daemon'], { env, stdio: 'ignore' });
const fake = spawn('python3', [join(REPO, 'tests/fake_provider/server.py'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((r) => fake.stdout.once('data', (d) => r(Number(String(d).split(' ')[1]))));

try {
  const base = await import(join(resolve(BASE), 'index.mjs'));
  const cur = await import(join(REPO, 'sdk-typescript/dist/index.mjs'));
  for (let i = 0; ; i++) {
    try {
      if ((await cur.health({ socketPath: socket })).status === 'ok') break;
    } catch (e) {
      if (i > 200) throw e;
      await sleep(50);
    }
  }
  const url = `http://127.0.0.1:${port}/v1/chat/completions`;
  const body = JSON.stringify({ model: 'gpt-4o', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello.' }] });
  const init = { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' }, body };
  const sinit = { ...init, body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'Say hello.' }] }) };
  const dataDir = join(root, 'sdk-data');
  const instant = {
    async request(method, path, b) {
      JSON.stringify(b);
      return path === '/v1/check' ? { status: 200, body: { decision: 'allow', reservation_id: 'r_x', reserved_nanousd: 1 } } : { status: 200, body: { cost_nanousd: 1 } };
    },
    async requestText(method, path) {
      return this.request(method, path, undefined);
    },
  };
  const drain = async (r) => {
    const reader = r.body.getReader();
    while (!(await reader.read()).done);
  };

  async function compare(title, n, make, read) {
    const fns = [
      ['bare fetch', (u, i) => fetch(u, i), async () => {}],
      ['base build', make(base), base.flush],
      ['current build', make(cur), cur.flush],
    ];
    const times = fns.map(() => []);
    for (let i = 0; i < n + 200; i++) {
      for (let k = 0; k < 3; k++) {
        const j = (i + k) % 3;
        const [, fn, after] = fns[j];
        const t = now();
        await fn(url, read === drain ? sinit : init).then(read);
        if (i >= 200) times[j].push(Number(now() - t)); // the first 200: warm-up
        await after();
      }
    }
    console.log(`\n${title} (${n} calls each, load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')})`);
    const p50 = times.map((xs) => pct(xs, 50) / 1000);
    const p99 = times.map((xs) => pct(xs, 99) / 1000);
    fns.forEach(([name], j) => console.log(`  ${name.padEnd(16)} p50 ${p50[j].toFixed(1).padStart(8)} µs   p99 ${p99[j].toFixed(1).padStart(8)} µs`));
    console.log(`  added at p50: base ${(p50[1] - p50[0]).toFixed(1)} µs, current ${(p50[2] - p50[0]).toFixed(1)} µs`);
  }

  const json = (r) => r.json();
  await compare('non-streaming chat, the SDK socket transport and the daemon', CALLS, (sw) => sw.spendwallFetch({ socketPath: socket, dataDir, agent: 'bench', tags: { bench: 'typescript' } }), json);
  await compare('non-streaming chat, a transport that answers at once (the SDK-side work)', CALLS, (sw) => sw.spendwallFetch({ transport: instant, dataDir, agent: 'bench' }), json);
  await compare('streaming chat read to its end, socket transport', Math.max(200, CALLS / 4), (sw) => sw.spendwallFetch({ socketPath: socket, dataDir, agent: 'bench' }), drain);
} finally {
  daemon.kill('SIGTERM');
  fake.kill('SIGTERM');
  await sleep(200);
  rmSync(root, { recursive: true, force: true });
}
process.exit(0);
