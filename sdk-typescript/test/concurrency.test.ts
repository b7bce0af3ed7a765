/** 32 concurrent calls against a $0.05 cap never admit more than the cap. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as sw from '../dist/cjs/index';
import { Daemon, Fake, isolateEnv, tempDataDir } from './support/harness';

const LIMIT_NANOUSD = 50_000_000; // caps.toml in the harness: limit_usd = 0.05
const N = 32;
let daemon: Daemon;
let fake: Fake;

before(async () => {
  isolateEnv();
  daemon = await new Daemon().start();
  fake = await new Fake().start();
});

after(async () => {
  await fake.stop();
  await daemon.cleanup();
});

test('32 concurrent calls against a cap: no overspend, blocked calls never reach the provider', async () => {
  await fake.reset();
  const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir: tempDataDir(), agent: 'conc-node' });
  // every call reserves max_tokens x gpt-4o's output price (~$0.01) plus its input: ~4 fit at
  // once; the fake holds each admitted call 600 ms, so all 32 checks race for the same budget
  const one = async (): Promise<string> => {
    try {
      const res = await f(fake.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-fake-delay-ms': '600', 'x-fake-usage': '10,5,0,0,0' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], max_tokens: 1000 }),
      });
      await res.json();
      return 'ok';
    } catch (e) {
      if (e instanceof sw.BudgetExceededError) return 'blocked';
      throw e;
    }
  };
  const results = await Promise.all(Array.from({ length: N }, one));
  await sw.flush();
  const admitted = results.filter((r) => r === 'ok').length;
  const blocked = results.filter((r) => r === 'blocked').length;
  assert.equal(admitted + blocked, N);
  assert.ok(admitted >= 1 && blocked >= 1, `admitted ${admitted}, blocked ${blocked}`);
  const rows = await daemon.rows('conc-node', N);
  const ok = rows.filter((r) => r.outcome === 'ok');
  assert.equal(ok.length, admitted);
  assert.equal(rows.filter((r) => r.outcome === 'blocked').length, blocked);
  // what was admitted at once (worst cases held together) stayed within the cap
  assert.ok(ok.reduce((s, r) => s + r.reserved_nanousd, 0) <= LIMIT_NANOUSD);
  assert.ok(rows.reduce((s, r) => s + r.cost_nanousd, 0) <= LIMIT_NANOUSD);
  assert.ok(ok.every((r) => r.input_tokens === 10 && r.output_tokens === 5));
  assert.equal((await fake.calls()).filter((r) => String(r.path).endsWith('/chat/completions')).length, admitted);
});
