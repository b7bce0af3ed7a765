#!/usr/bin/env node
// The SDK's own work per non-streaming call, without a network or a daemon: the wrapped fetch
// is an in-process fetch that answers at once with a fresh JSON `Response` (as undici's would
// be: a body stream, a content-type), and the transport answers the check and the report at
// once. What is left is what spendwallFetch itself does: reading the request body, the check
// payload, attribution, the clone of the answer for its usage, the background report.
//
//     (cd sdk-typescript && tsc -p tsconfig.json && node scripts/esm-entry.mjs)
//     node bench/typescript/sdk-cost.mjs [--calls 20000] [--rounds 5]
//     node bench/typescript/sdk-cost.mjs --http --calls 2000   # Node's fetch and the fake provider
//     node bench/typescript/sdk-cost.mjs --dist /tmp/dist-before   # another build, to compare
//     node --cpu-prof --cpu-prof-dir=$(mktemp -d) bench/typescript/sdk-cost.mjs   # where the time goes
//
// Prints, per round, the median time of a bare call (fetch + json()), of a wrapped call until
// its JSON is parsed, and of the background report (flush()), each over the whole round.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const CALLS = arg('--calls', 20000);
const ROUNDS = arg('--rounds', 5);
// --dist DIR: another build of the SDK (e.g. a copy of dist/ from before a change), to compare
const di = process.argv.indexOf('--dist');
const DIST = di > 0 ? resolve(process.argv[di + 1]) : join(REPO, 'sdk-typescript/dist');
const sw = await import(join(DIST, 'index.mjs'));

const answer = JSON.stringify({
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the fake provider. It answers every request the same way.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
});
// --http: Node's own fetch against the shared fake provider instead (adds the network's noise)
const HTTP = process.argv.includes('--http');
const provider = HTTP ? spawn('python3', [join(REPO, 'tests/fake_provider/server.py'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] }) : undefined;
const port = provider ? await new Promise((r) => provider.stdout.once('data', (d) => r(Number(String(d).split(' ')[1])))) : 0;
const fakeFetch = HTTP ? (u, i) => fetch(u, i) : async () => new Response(answer, { status: 200, headers: { 'content-type': 'application/json' } });
const instant = {
  async request(method, path, b) {
    JSON.stringify(b);
    return path === '/v1/check' ? { status: 200, body: { decision: 'allow', reservation_id: 'r_x', reserved_nanousd: 1 } } : { status: 200, body: { cost_nanousd: 1 } };
  },
  async requestText(method, path) {
    return this.request(method, path, undefined);
  },
};
const root = mkdtempSync(join(tmpdir(), 'swcost-'));
const f = sw.spendwallFetch({ fetch: fakeFetch, transport: instant, dataDir: join(root, 'data'), configDir: join(root, 'config'), agent: 'bench', tags: { bench: 'typescript' } });
const url = HTTP ? `http://127.0.0.1:${port}/v1/chat/completions` : 'https://api.openai.com/v1/chat/completions';
const body = JSON.stringify({ model: 'gpt-4o', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello.' }] });
const init = { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' }, body };

const now = () => process.hrtime.bigint();
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
try {
  for (let round = 0; round < ROUNDS; round++) {
    const tb = [];
    const tw = [];
    const tr = [];
    for (let i = 0; i < CALLS; i++) {
      let t = now();
      await fakeFetch(url, init).then((r) => r.json());
      tb.push(Number(now() - t));
      t = now();
      await f(url, init).then((r) => r.json());
      tw.push(Number(now() - t));
      t = now();
      await sw.flush();
      tr.push(Number(now() - t));
    }
    const b = median(tb) / 1000;
    const w = median(tw) / 1000;
    console.log(
      `round ${round}: bare ${b.toFixed(1)} µs, wrapped ${w.toFixed(1)} µs, added ${(w - b).toFixed(1)} µs (p50); background report ${(median(tr) / 1000).toFixed(1)} µs`,
    );
  }
} finally {
  rmSync(root, { recursive: true, force: true });
  provider?.kill('SIGTERM');
}
