/** Fail-open with spooling and replay across a daemon crash; strict mode; the spool's cap. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as sw from '../dist/cjs/index';
import { Daemon, Fake, expected, isolateEnv, newAgent, readAll, sleep, spoolFile, spoolLines, tempDataDir, usageOf } from './support/harness';

let fake: Fake;
const MSG = [{ role: 'user', content: 'hi' }];

before(async () => {
  isolateEnv();
  fake = await new Fake().start();
});

after(async () => {
  await sw.flush();
  await fake.stop();
});

function nowhere(): string {
  return path.join(tempDataDir(), 'no-daemon.sock');
}

function chat(f: sw.FetchLike, headers: Record<string, string> = {}, extra: object = {}): Promise<Response> {
  return f(fake.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o', messages: MSG, ...extra }),
  });
}

test('daemon killed mid-run: calls keep working, the spool is replayed after restart, no duplicates', async () => {
  const daemon = await new Daemon('').start();
  try {
    await fake.reset();
    const agent = newAgent();
    const dataDir = tempDataDir();
    const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir, agent });
    const sent: string[] = [];
    const call = async (i: number, headers: Record<string, string> = {}) => {
      const u = `${100 + i},${i + 1},${i},0,0`;
      await (await chat(f, { 'x-fake-usage': u, ...headers })).json();
      sent.push(u);
    };
    for (let i = 0; i < 5; i++) await call(i);
    await sw.flush();
    assert.equal((await daemon.rows(agent, 5)).length, 5);

    // a call in flight (checked, waiting on the provider) when the daemon dies
    const inFlight = call(5, { 'x-fake-delay-ms': '800' });
    for (let i = 0; i < 100 && (await fake.calls()).length < 6; i++) await sleep(10);
    await daemon.stop('SIGKILL');
    for (let i = 6; i < 11; i++) await call(i); // the daemon is gone: calls keep working
    const stream = await chat(f, { 'x-fake-usage': '300,30,3,0,0' }, { stream: true });
    assert.ok((await readAll(stream)).length > 0);
    sent.push('300,30,3,0,0');
    await inFlight;
    await sw.flush();
    assert.equal(sent.length, 12);
    const spooled = spoolLines(dataDir);
    assert.equal(spooled.length, 7);
    assert.equal(spooled.filter((item) => item.reservation_id).length, 1); // the in-flight one had a reservation
    assert.ok(spooled.every((item) => item.agent === agent && item.provider === 'openai' && item.model === 'gpt-4o' && item.outcome === 'ok'));
    const backup = spoolFile(dataDir) + '.copy';
    fs.copyFileSync(spoolFile(dataDir), backup);

    await daemon.start(); // same config, data dir and socket
    await (await chat(f, { 'x-fake-usage': '1,1,0,0,0' })).json(); // the daemon answers: replay starts in the background
    sent.push('1,1,0,0,0');
    const counts = await sw.replaySpool({ socketPath: daemon.socket, dataDir });
    assert.equal(counts.pending, 0);
    assert.equal(counts.rejected, 0);
    assert.deepEqual(spoolLines(dataDir), []);

    const rows = await daemon.rows(agent, 13);
    assert.equal(rows.length, 13);
    assert.equal(new Set(rows.map((r) => r.request_id)).size, 13);
    const key = (u: object) => JSON.stringify(u);
    assert.deepEqual(rows.map((r) => key(usageOf(r))).sort(), sent.map((u) => key(expected(u, 'openai'))).sort());
    assert.ok(rows.every((r) => r.outcome === 'ok'));

    // replaying the same reports again is idempotent
    fs.renameSync(backup, spoolFile(dataDir));
    const again = await sw.replaySpool({ socketPath: daemon.socket, dataDir });
    assert.deepEqual(again, { recorded: 0, duplicate: 7, rejected: 0, pending: 0 });
    assert.equal((await daemon.rows(agent)).length, 13);
  } finally {
    await daemon.cleanup();
  }
});

test('fail-open without a daemon: the call goes through, its report is spooled with its attribution', async () => {
  await fake.reset();
  const agent = newAgent();
  const dataDir = tempDataDir();
  const f = sw.spendwallFetch({ socketPath: nowhere(), dataDir, agent, tags: { k: 'v' }, session: 's' });
  const res = await f(fake.url + '/v1/messages', {
    method: 'POST',
    headers: { 'x-fake-usage': '5,4,3,2,0' },
    body: JSON.stringify({ model: 'claude-opus-4-5', max_tokens: 8, messages: MSG }),
  });
  assert.equal(((await res.json()) as any).content[0].text.slice(0, 5), 'Hello');
  await sw.flush();
  const [item] = spoolLines(dataDir);
  assert.deepEqual(item.usage, expected('5,4,3,2,0', 'anthropic'));
  assert.deepEqual(
    [item.provider, item.model, item.agent, item.reservation_id, item.tags, item.session, item.status, item.outcome, item.mode, item.path],
    ['anthropic', 'claude-opus-4-5', agent, null, { k: 'v' }, 's', 200, 'ok', 'default', 'sdk'],
  );
  assert.match(item.id, /^c_[0-9a-f]{32}$/);
  assert.equal(typeof item.time_ms, 'number');
  assert.equal(fs.statSync(spoolFile(dataDir)).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.dirname(spoolFile(dataDir))).mode & 0o777, 0o700);
  assert.equal((await fake.calls()).length, 1);
});

for (const how of ['option', 'env', 'configure', 'header'] as const) {
  test(`strict (${how}) without a daemon: DaemonUnavailableError before the provider sees a byte`, async () => {
    await fake.reset();
    const dataDir = tempDataDir();
    let headers: Record<string, string> = {};
    let strict: boolean | undefined;
    if (how === 'option') strict = true;
    else if (how === 'env') process.env.SPENDWALL_STRICT = '1';
    else if (how === 'configure') sw.configure({ strict: true });
    else headers = { 'x-spendwall-mode': 'strict' };
    try {
      const f = sw.spendwallFetch({ socketPath: nowhere(), dataDir, strict });
      for (const extra of [{}, { stream: true }]) {
        const err = await chat(f, headers, extra).then(() => undefined, (e) => e);
        if (!(err instanceof sw.DaemonUnavailableError)) return assert.fail(`expected DaemonUnavailableError, got ${err}`);
        assert.ok(err instanceof sw.SpendwallError);
        assert.equal(err.code, 'unavailable');
        assert.match(err.message, /unreachable/);
      }
    } finally {
      delete process.env.SPENDWALL_STRICT;
      sw.configure({ strict: null });
    }
    await sw.flush();
    assert.deepEqual(await fake.calls(), []);
    assert.deepEqual(spoolLines(dataDir), []);
  });
}

test('strict: false given explicitly wins over SPENDWALL_STRICT=1', async () => {
  process.env.SPENDWALL_STRICT = '1';
  try {
    const dataDir = tempDataDir();
    const res = await chat(sw.spendwallFetch({ socketPath: nowhere(), dataDir, strict: false }));
    assert.equal(res.status, 200);
    await res.json();
    await sw.flush();
    assert.equal(spoolLines(dataDir).length, 1);
  } finally {
    delete process.env.SPENDWALL_STRICT;
  }
});

test('the spool is capped: one SpoolFull warning, further reports dropped, calls still work', async () => {
  const dataDir = tempDataDir();
  const warnings: { name: string; code?: string }[] = [];
  const onWarning = (w: { name: string; code?: string }) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    const f = sw.spendwallFetch({ socketPath: nowhere(), dataDir, agent: 'cap', spoolMaxBytes: 700 });
    for (let i = 0; i < 6; i++) assert.equal((await chat(f)).status, 200);
    await sw.flush();
    await sleep(10); // warnings are emitted on the next tick
  } finally {
    process.off('warning', onWarning);
  }
  const lines = spoolLines(dataDir);
  assert.ok(lines.length >= 1 && lines.length < 6, `${lines.length} lines`);
  assert.ok(fs.statSync(spoolFile(dataDir)).size <= 700);
  const full = warnings.filter((w) => w.name === 'SpoolFull');
  assert.equal(full.length, 1);
  assert.equal(full[0].code, 'SPENDWALL_SPOOL_FULL');
});
