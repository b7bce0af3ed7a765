#!/usr/bin/env bash
# Packs sdk-typescript (already built into dist/) and installs the tarball offline into a fresh
# temporary project, then checks: an ESM script and a CommonJS script both load it and make a
# call through spendwallFetch (fail-open, spooled: no daemon needed); they share one instance;
# createSpendwallOpenAI loads an installed `openai` (a stub package here: the real one cannot be
# fetched offline) and names a missing `@anthropic-ai/sdk`; the shipped .d.ts type-check a
# TypeScript consumer under both `node` and `node16` resolution without @types/node.
set -euo pipefail
sdk="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/swts-pack-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$sdk"
tarball="$(npm pack --silent --offline --ignore-scripts --pack-destination "$work" | tail -n 1)"
echo "packed $tarball ($(tar -tzf "$work/$tarball" | wc -l) files)"
if tar -tzf "$work/$tarball" | grep -E 'src/|test/|build-test/|tsconfig' >/dev/null; then
  echo "pack-check: the tarball ships sources or tests:" >&2
  tar -tzf "$work/$tarball" >&2
  exit 1
fi
mkdir -p "$work/app"
cd "$work/app"
echo '{"name": "consumer", "version": "1.0.0", "private": true}' > package.json
npm install "../$tarball" --offline --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
test -f node_modules/spendwall/dist/cjs/index.js

# a stub `openai` package: just enough of the real constructor (it keeps options.fetch on .fetch)
mkdir -p node_modules/openai
echo '{"name": "openai", "version": "0.0.0-stub", "main": "index.js"}' > node_modules/openai/package.json
cat > node_modules/openai/index.js <<'JS'
class OpenAI { constructor(options) { this.options = options; this.fetch = options.fetch; } }
module.exports = OpenAI; module.exports.OpenAI = OpenAI; module.exports.default = OpenAI;
JS

# a local upstream that answers like OpenAI's chat completions
cat > upstream.cjs <<'JS'
const http = require('node:http');
module.exports = () => new Promise((resolve) => {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'x', choices: [], usage: { prompt_tokens: 12, completion_tokens: 3 } }));
    });
  });
  server.listen(0, '127.0.0.1', () => resolve(server));
});
JS

cat > check.mjs <<'JS'
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import sw, { spendwallFetch, flush, SpendwallError, BudgetExceededError, createSpendwallOpenAI, createSpendwallAnthropic, VERSION } from 'spendwall';
const require = createRequire(import.meta.url);
const cjs = require('spendwall');
assert.equal(cjs.spendwallFetch, spendwallFetch, 'import and require share one instance');
assert.equal(sw.BudgetExceededError, BudgetExceededError);
assert.ok(new BudgetExceededError('x') instanceof SpendwallError);
assert.equal(VERSION, JSON.parse(readFileSync('node_modules/spendwall/package.json', 'utf8')).version);
const server = await require('./upstream.cjs')();
const dataDir = mkdtempSync(join(tmpdir(), 'swts-esm-'));
const f = spendwallFetch({ socketPath: join(dataDir, 'none.sock'), dataDir, agent: 'esm' });
const res = await f(`http://127.0.0.1:${server.address().port}/v1/chat/completions`, { method: 'POST', body: '{"model":"gpt-4o"}' });
assert.equal((await res.json()).usage.prompt_tokens, 12);
await flush();
const [item] = readFileSync(join(dataDir, 'spool', 'reports.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
assert.deepEqual([item.agent, item.usage.input_tokens, item.usage.output_tokens], ['esm', 12, 3]);
const client = createSpendwallOpenAI({ agent: 'esm', clientOptions: { apiKey: 'k' } });
assert.equal(client.options.apiKey, 'k');
assert.equal(typeof client.fetch, 'function');
assert.throws(() => createSpendwallAnthropic(), (e) => e.code === 'missing_peer_dependency' && e.message.includes("'@anthropic-ai/sdk'"));
server.close();
console.log('ESM import: ok');
JS

cat > check.cjs <<'JS'
const assert = require('node:assert/strict');
const { mkdtempSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { tmpdir } = require('node:os');
const { spendwallFetch, flush, DaemonUnavailableError, createSpendwallOpenAI } = require('spendwall');
(async () => {
  const server = await require('./upstream.cjs')();
  const dataDir = mkdtempSync(join(tmpdir(), 'swts-cjs-'));
  const url = `http://127.0.0.1:${server.address().port}/v1/chat/completions`;
  const f = spendwallFetch({ socketPath: join(dataDir, 'none.sock'), dataDir, agent: 'cjs' });
  assert.equal((await (await f(url, { method: 'POST', body: '{"model":"gpt-4o"}' })).json()).usage.completion_tokens, 3);
  await flush();
  assert.equal(readFileSync(join(dataDir, 'spool', 'reports.jsonl'), 'utf8').trim().split('\n').length, 1);
  const strict = spendwallFetch({ socketPath: join(dataDir, 'none.sock'), dataDir, strict: true });
  await assert.rejects(strict(url, { method: 'POST', body: '{"model":"gpt-4o"}' }), DaemonUnavailableError);
  // the client's fetch is the wrapper: its call is spooled (no daemon) under the environment's data dir
  const client = createSpendwallOpenAI({ agent: 'cjs-client', clientOptions: { apiKey: 'k' } });
  assert.equal((await (await client.fetch(url, { method: 'POST', body: '{"model":"gpt-4o"}' })).json()).id, 'x');
  await flush();
  const spooled = readFileSync(join(process.env.SPENDWALL_DATA_DIR, 'spool', 'reports.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(spooled.map((i) => [i.agent, i.usage.input_tokens]), [['cjs-client', 12]]);
  server.close();
  console.log('CommonJS require: ok');
})().catch((e) => { console.error(e); process.exit(1); });
JS

# the scripts run in an environment of their own: a call made without explicit options (the
# client helpers') must neither reach a real daemon, spool into the real home, nor follow the
# real config's fail_mode (no daemon is started here)
iso=(env -u XDG_RUNTIME_DIR -u XDG_DATA_HOME -u XDG_CONFIG_HOME -u SPENDWALL_STRICT TMPDIR="$work" HOME="$work/home"
  SPENDWALL_DATA_DIR="$work/data" SPENDWALL_SOCKET="$work/no-daemon.sock" SPENDWALL_CONFIG_DIR="$work/config")
"${iso[@]}" node check.mjs
"${iso[@]}" node check.cjs

# the shipped declarations, for TypeScript consumers without @types/node
cat > consumer.ts <<'TS'
import { spendwallFetch, BudgetExceededError, DaemonUnavailableError, configure, withTags, type SpendwallOptions, type Usage, type Transport, type UnavailableReason } from 'spendwall';
const options: SpendwallOptions = { agent: 'a', tags: { k: 'v' }, strict: false, timeout: 5000, configDir: '/etc/spendwall' };
const f: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> = spendwallFetch(options);
configure({ strict: null });
const u: Usage = { input_tokens: 1, output_tokens: 2, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 };
const t: Transport = { request: async () => ({ status: 200, body: {} }) };
export async function run(): Promise<number | undefined> {
  try {
    await withTags({ pr: '1' }, () => f('https://api.openai.com/v1/chat/completions', { method: 'POST' }));
  } catch (e) {
    if (e instanceof BudgetExceededError) return e.remainingNanousd;
    if (e instanceof DaemonUnavailableError) {
      const why: UnavailableReason = e.reason;
      return why === 'fail_closed' ? 0 : undefined;
    }
  }
  return u.input_tokens + (t ? 0 : 1);
}
TS
cp consumer.ts consumer.mts
for mode in "commonjs node consumer.ts" "node16 node16 consumer.mts"; do
  set -- $mode
  cat > tsconfig.json <<JSON
{"compilerOptions": {"noEmit": true, "strict": true, "types": [], "lib": ["es2020", "dom"],
 "module": "$1", "moduleResolution": "$2", "skipLibCheck": false}, "files": ["$3"]}
JSON
  tsc -p tsconfig.json
done
echo "TypeScript consumer (node and node16 resolution, ESM and CJS types): ok"
