/** remaining() / estimate() / health() / snapshot() and the transport against the real daemon. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as sw from '../dist/cjs/index';
import { UnixTransport } from '../dist/cjs/internal/transport';
import { errorFromBody } from '../dist/cjs/internal/errors';
import { Daemon, Fake, isolateEnv, tempDataDir } from './support/harness';

let daemon: Daemon;
let fake: Fake;

before(async () => {
  isolateEnv();
  daemon = await new Daemon().start();
  fake = await new Fake().start();
  process.env.SPENDWALL_SOCKET = daemon.socket; // the helpers resolve the socket like the SDK does: env second
});

after(async () => {
  await sw.flush();
  await fake.stop();
  await daemon.cleanup();
});

test('remaining() and estimate() against the real daemon; health() and snapshot()', async () => {
  const before = await sw.remaining('helper-cap');
  assert.ok(before !== undefined && before > 0 && before <= 2_000_000_000);
  assert.equal(await sw.remaining({ agent: 'helper-agent' }), before);
  assert.equal(await sw.remaining('no-such-cap'), undefined);
  const f = sw.spendwallFetch({ agent: 'helper-agent', dataDir: tempDataDir() });
  const res = await f(fake.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'x-fake-usage': '1000,1000,0,0,0' },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
  });
  await res.json();
  await sw.flush();
  // gpt-4o: $2.50 / M input, $10 / M output -> 1000 + 1000 tokens = $0.0125
  assert.equal(before - (await sw.remaining('helper-cap'))!, 12_500_000);
  const est = await sw.estimate({ model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(est.priced, true);
  assert.equal(est.max_output_tokens, 100);
  assert.ok(est.max_cost_nanousd >= est.min_cost_nanousd && est.min_cost_nanousd >= 0);
  assert.equal((await sw.health()).status, 'ok');
  assert.ok(Array.isArray((await sw.snapshot()).caps));
  await assert.rejects(sw.health({ socketPath: daemon.socket + '.none' }), sw.DaemonUnavailableError);
});

test('the transport against the daemon: keep-alive under concurrency, daemon errors mapped by code', async () => {
  const t = new UnixTransport(daemon.socket);
  const results = await Promise.all(Array.from({ length: 64 }, () => t.request('GET', '/v1/health')));
  assert.ok(results.every((r) => r.status === 200 && r.body.status === 'ok'));
  const bad = await t.request('POST', '/v1/check', { provider: 'openai' });
  assert.equal(bad.status, 400);
  assert.equal((bad.body.error as any).code, 'bad_request');
  const unknown = await t.request('POST', '/v1/report', { reservation_id: 'r_nope', usage: {} });
  const err = errorFromBody(unknown.body, unknown.status);
  assert.equal(unknown.status, 404);
  assert.equal(err.code, 'unknown_reservation');
  assert.equal(err.constructor, sw.SpendwallError);
  const missing = await t.request('GET', '/v1/nope');
  assert.equal((missing.body.error as any).code, 'not_found');
  t.close();
});

test('replaySpool() with nothing spooled, and the daemon answering a malformed batch item as rejected', async () => {
  const dataDir = tempDataDir();
  assert.deepEqual(await sw.replaySpool({ dataDir }), { recorded: 0, duplicate: 0, rejected: 0, pending: 0 });
  const t = new UnixTransport(daemon.socket);
  const r = await t.request('POST', '/v1/reports', { reports: [{ id: 'c_bad' }] });
  assert.equal((r.body.results as any[])[0].result, 'rejected');
  t.close();
});

test('a script that makes one call exits by itself, after its report reached the daemon', async () => {
  const { spawn } = require('node:child_process');
  const dist = require('node:path').resolve(__dirname, '..', 'dist', 'cjs', 'index.js');
  const agent = 'exit-' + Date.now();
  const code = `
    const { spendwallFetch } = require(${JSON.stringify(dist)});
    spendwallFetch({ agent: ${JSON.stringify(agent)}, dataDir: ${JSON.stringify(tempDataDir())} })(
      ${JSON.stringify(fake.url + '/v1/chat/completions')},
      { method: 'POST', headers: { 'x-fake-usage': '3,2,0,0,0' }, body: '{"model":"gpt-4o"}' },
    ).then((r) => r.json()).then(() => console.log('answered'));`; // no flush(): the pending report keeps the process up
  const child = spawn(process.execPath, ['-e', code], { env: { ...process.env, SPENDWALL_SOCKET: daemon.socket }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: NodeBuffer) => (out += d.toString()));
  // a watchdog, not a speed limit: a ref'd idle connection would keep the child up for good
  let stuck = false;
  const watchdog = setTimeout(() => {
    stuck = true;
    child.kill('SIGKILL');
  }, 30_000);
  const exitCode = await new Promise<number>((r) => child.on('exit', (c: number) => r(c)));
  clearTimeout(watchdog);
  assert.ok(!stuck, 'the child never exited: idle daemon connections must not keep the process alive');
  assert.equal(exitCode, 0);
  assert.equal(out.trim(), 'answered');
  const rows = await daemon.rows(agent, 1, 1000);
  assert.equal(rows.length, 1);
  assert.deepEqual([rows[0].input_tokens, rows[0].output_tokens, rows[0].outcome], [3, 2, 'ok']);
});

test('an unwritable spool: the call still works, one warning says the reports are lost', async () => {
  const warnings: { name: string; code?: string }[] = [];
  const onWarning = (w: { name: string; code?: string }) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    const f = sw.spendwallFetch({ socketPath: daemon.socket + '.none', dataDir: '/dev/null/not-a-dir' });
    for (let i = 0; i < 3; i++) {
      const res = await f(fake.url + '/v1/chat/completions', { method: 'POST', body: '{"model":"gpt-4o"}' });
      assert.equal(res.status, 200);
      await res.json();
    }
    await sw.flush();
    await new Promise((r) => setTimeout(r, 10));
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings.filter((w) => w.code === 'SPENDWALL_SPOOL_UNWRITABLE').map((w) => w.name), ['SpendwallWarning']);
});
