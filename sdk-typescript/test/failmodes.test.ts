/**
 * Fail-open with spooling and replay across a daemon crash; strict mode and the daemon's own
 * fail_mode; fail-closed refusals; checks held for approval; the spool's cap.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as sw from '../dist/cjs/index';
import { tuning } from '../dist/cjs/internal/daemonconfig';
import { CAPS, Daemon, Fake, LedgerLock, expected, isolateEnv, newAgent, readAll, sleep, spoolFile, spoolLines, tempDataDir, usageOf, waitUntil } from './support/harness';

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

test('fail closed wins: strict: false or x-spendwall-mode: default does not undo SPENDWALL_STRICT=1 or configure({ strict: true })', async () => {
  await fake.reset();
  const dataDir = tempDataDir();
  for (const how of ['env', 'configure'] as const) {
    if (how === 'env') process.env.SPENDWALL_STRICT = '1';
    else sw.configure({ strict: true });
    try {
      const f = sw.spendwallFetch({ socketPath: nowhere(), dataDir, strict: false });
      for (const headers of [{}, { 'x-spendwall-mode': 'default' }] as Record<string, string>[]) {
        const err = await chat(f, headers).then(() => undefined, (e) => e);
        if (!(err instanceof sw.DaemonUnavailableError)) return assert.fail(`${how} ${JSON.stringify(headers)}: expected DaemonUnavailableError, got ${err}`);
        assert.equal(err.reason, 'unreachable');
      }
    } finally {
      delete process.env.SPENDWALL_STRICT;
      sw.configure({ strict: null });
    }
  }
  // and with nothing strict anywhere, the same call fails open
  const res = await chat(sw.spendwallFetch({ socketPath: nowhere(), dataDir, strict: false }), { 'x-spendwall-mode': 'default' });
  assert.equal(res.status, 200);
  await res.json();
  await sw.flush();
  assert.equal(spoolLines(dataDir).length, 1);
  assert.equal((await fake.calls()).length, 1);
});

/** A config dir holding this spendwall.toml (the daemon's file the SDK reads `[policy]` from). */
function configDirWith(toml: string | undefined, dir = tempDataDir()): string {
  fs.mkdirSync(dir, { recursive: true });
  if (toml !== undefined) fs.writeFileSync(path.join(dir, 'spendwall.toml'), toml);
  return dir;
}

const CLOSED_TOML = `# written by spendwall init
[daemon]
log_level = "info" # fail_mode = "open" here is not [policy]'s

[policy]
fail_mode = "closed"   # no spend the ledger cannot record
approval_timeout = "1m"

[proxy]
listen = "127.0.0.1:8787"
`;

for (const how of ['configDir option', 'SPENDWALL_CONFIG_DIR', 'XDG_CONFIG_HOME'] as const) {
  test(`fail_mode = "closed" in the daemon's spendwall.toml (${how}): an unreachable daemon throws before the provider sees a byte`, async () => {
    await fake.reset();
    const dataDir = tempDataDir();
    const base = tempDataDir();
    const configDir = configDirWith(CLOSED_TOML, how === 'XDG_CONFIG_HOME' ? path.join(base, 'spendwall') : base);
    const saved = { SPENDWALL_CONFIG_DIR: process.env.SPENDWALL_CONFIG_DIR, XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME };
    if (how === 'SPENDWALL_CONFIG_DIR') process.env.SPENDWALL_CONFIG_DIR = configDir;
    if (how === 'XDG_CONFIG_HOME') {
      delete process.env.SPENDWALL_CONFIG_DIR;
      process.env.XDG_CONFIG_HOME = base;
    }
    try {
      // strict: false given explicitly does not undo the daemon's fail_mode (fail closed wins)
      const f = sw.spendwallFetch({ socketPath: nowhere(), dataDir, strict: false, configDir: how === 'configDir option' ? configDir : undefined });
      for (const extra of [{}, { stream: true }]) {
        const err = await chat(f, {}, extra).then(() => undefined, (e) => e);
        if (!(err instanceof sw.DaemonUnavailableError)) return assert.fail(`expected DaemonUnavailableError, got ${err}`);
        assert.equal(err.code, 'unavailable');
        assert.equal(err.reason, 'unreachable');
        assert.match(err.message, /unreachable/);
        assert.ok(err.message.includes(`policy.fail_mode is "closed" in ${path.join(configDir, 'spendwall.toml')}`), err.message);
      }
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    await sw.flush();
    assert.deepEqual(await fake.calls(), []);
    assert.deepEqual(spoolLines(dataDir), []);
  });
}

test("the daemon's spendwall.toml is read again when it changes; without it (or with fail_mode = \"open\") calls fail open", async () => {
  await fake.reset();
  const dataDir = tempDataDir();
  const configDir = configDirWith('[policy]\nfail_mode = "closed"\n');
  const file = path.join(configDir, 'spendwall.toml');
  const f = sw.spendwallFetch({ socketPath: nowhere(), dataDir, configDir });
  const refused = async () => assert.ok((await chat(f).then(() => undefined, (e) => e)) instanceof sw.DaemonUnavailableError);
  const through = async () => {
    const res = await chat(f);
    assert.equal(res.status, 200);
    await res.json();
  };
  await refused();
  fs.writeFileSync(file, "[policy]\nfail_mode = 'open'\n");
  await through();
  fs.writeFileSync(file + '.new', '[policy]\n"fail_mode" = "closed"\n');
  fs.renameSync(file + '.new', file); // an editor's atomic save
  await refused();
  fs.writeFileSync(file, 'policy.fail_mode = "closed"\n'); // a dotted key at the root
  await refused();
  fs.writeFileSync(file, '[policy]\nfail_mode = "sometimes"\n'); // not a mode: ignored (the daemon rejects the file)
  await through();
  fs.writeFileSync(file, '[policy]\nfail_mode = "closed"\n');
  await refused();
  fs.chmodSync(file, 0o000);
  if (process.getuid?.() !== 0) await through(); // unreadable (root reads it anyway): ignored
  fs.chmodSync(file, 0o600);
  fs.unlinkSync(file);
  await through();
  await sw.flush();
  const passed = process.getuid?.() !== 0 ? 4 : 3;
  assert.equal(spoolLines(dataDir).length, passed);
  assert.equal((await fake.calls()).length, passed);
});

test('the daemon refuses checks as fail-closed while its ledger cannot write: DaemonUnavailableError even in fail-open mode, nothing upstream; calls work again after', { timeout: 120_000 }, async () => {
  const daemon = await new Daemon(CAPS, { 'spendwall.toml': '[policy]\nfail_mode = "closed"\n' }).start();
  let lock: LedgerLock | undefined;
  try {
    await fake.reset();
    const agent = newAgent();
    const dataDir = tempDataDir();
    // the SDK does not see the daemon's config (its own config dir has no spendwall.toml), so it
    // would fail open on an unreachable daemon: only the daemon's answer can stop the call
    const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir, configDir: configDirWith(undefined), agent });

    // a call checked before the ledger is locked, whose report comes while it is: the report
    // waits out SQLite's busy timeout, is refused (503) and spooled, and the daemon's ledger
    // writer is failing from then on
    // (held at the fake until the lock is taken, however long that takes on a busy machine)
    const first = chat(f, { 'x-fake-usage': '7,3,0,0,0', 'x-fake-gate': 'ledger-locked' }).then((r) => r.json());
    await waitUntil(async () => (await fake.calls()).length === 1, 'the first call upstream');
    lock = await LedgerLock.hold(daemon.database);
    await fake.release('ledger-locked');
    await first;
    await sw.flush();
    const spooled = spoolLines(dataDir);
    assert.equal(spooled.length, 1);
    assert.ok(spooled[0].reservation_id);
    await waitUntil(async () => (await daemon.request('GET', '/v1/health')).body.status === 'degraded', 'a degraded ledger');

    for (const extra of [{}, { stream: true }]) {
      const err = await chat(f, { 'x-fake-usage': '1,1,0,0,0' }, extra).then(() => undefined, (e) => e);
      if (!(err instanceof sw.DaemonUnavailableError)) return assert.fail(`expected DaemonUnavailableError, got ${err}`);
      assert.equal(err.reason, 'fail_closed');
      assert.equal(err.code, 'unavailable');
      assert.equal(err.status, 503);
      assert.equal((err.body.error as any).fail_closed, true);
      assert.match(err.message, /policy\.fail_mode is "closed"/);
    }
    assert.equal((await fake.calls()).length, 1); // the refused calls never went upstream

    await lock.release();
    lock = undefined;
    await waitUntil(async () => (await daemon.request('GET', '/v1/health')).body.status === 'ok', 'a healthy ledger');
    await (await chat(f, { 'x-fake-usage': '2,2,0,0,0' })).json();
    await sw.flush();
    const counts = await sw.replaySpool({ socketPath: daemon.socket, dataDir });
    assert.equal(counts.pending, 0);
    assert.deepEqual(spoolLines(dataDir), []);
    const rows = await daemon.rows(agent, 2);
    assert.equal(rows.length, 2); // the refused report's row once (the daemon kept it), and the last call
    assert.deepEqual(rows.map((r) => usageOf(r)), [expected('7,3,0,0,0', 'openai'), expected('2,2,0,0,0', 'openai')]);
    assert.equal((await fake.calls()).length, 2);
  } finally {
    await lock?.release();
    await daemon.cleanup();
  }
});

test("a check held for approval outlasts the SDK's timeout: the daemon's approval timeout answers ApprovalDeniedError, nothing goes upstream", { timeout: 120_000 }, async () => {
  const daemon = await new Daemon(CAPS, { 'spendwall.toml': '[policy]\napproval_timeout = "2s"\n' }).start();
  try {
    await fake.reset();
    const dataDir = tempDataDir();
    // fail-open, with a 1 s timeout: the check, held 2 s by the daemon, must not be taken for an
    // unreachable daemon (which would send the call upstream unapproved)
    const f = sw.spendwallFetch({ socketPath: daemon.socket, dataDir, configDir: daemon.configDir, agent: 'approve-node', timeout: 1000 });
    const err = await chat(f, { 'x-fake-usage': '9,4,0,0,0' }, { max_tokens: 16 }).then(() => undefined, (e) => e);
    if (!(err instanceof sw.ApprovalDeniedError)) return assert.fail(`expected ApprovalDeniedError, got ${err}`);
    assert.equal(err.code, 'approval_denied');
    await sw.flush();
    assert.deepEqual(await fake.calls(), []);
    assert.deepEqual(spoolLines(dataDir), []);
    const approvals = (await daemon.request('GET', '/v1/approvals')).body.approvals as any[];
    assert.deepEqual(approvals.filter((a) => a.agent === 'approve-node'), []); // none left pending
  } finally {
    await daemon.cleanup();
  }
});

/** A stand-in daemon on a Unix socket that reads each request and hands its socket to `handle`. */
async function scriptedDaemon(handle: (sock: net.Socket) => void): Promise<{ socket: string; requests: string[]; close(): void }> {
  const socket = path.join(tempDataDir(), 'd.sock');
  const requests: string[] = [];
  const open = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      requests.push(buf.slice(0, buf.indexOf('\r\n')));
      buf = '';
      handle(sock);
    });
  });
  await new Promise<void>((r) => server.listen(socket, () => r()));
  return {
    socket,
    requests,
    close() {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

test('a check the daemon took but never answered throws DaemonUnavailableError (timeout) even in fail-open mode, after the approval wait', { timeout: 60_000 }, async () => {
  const d = await scriptedDaemon(() => undefined); // holds every request, as a daemon waiting on a person does
  const margin = tuning.approvalMarginMs;
  tuning.approvalMarginMs = 200;
  try {
    await fake.reset();
    const dataDir = tempDataDir();
    const configDir = configDirWith('[policy]\napproval_timeout = "1s"\n');
    const f = sw.spendwallFetch({ socketPath: d.socket, dataDir, configDir, timeout: 100 });
    const err = await chat(f).then(() => undefined, (e) => e);
    if (!(err instanceof sw.DaemonUnavailableError)) return assert.fail(`expected DaemonUnavailableError, got ${err}`);
    assert.equal(err.reason, 'timeout');
    // max(timeout 100 ms, approval_timeout 1 s + the margin): the configured timeout did not end the wait
    assert.match(err.message, /did not answer POST \/v1\/check within 1200 ms/);
    assert.deepEqual(d.requests, ['POST /v1/check HTTP/1.1']);
    await sw.flush();
    assert.deepEqual(await fake.calls(), []);
    assert.deepEqual(spoolLines(dataDir), []);
  } finally {
    tuning.approvalMarginMs = margin;
    d.close();
  }
});

test('a daemon that closes the connection after reading the check: DaemonUnavailableError (connection_lost) even in fail-open mode', async () => {
  const d = await scriptedDaemon((sock) => sock.destroy());
  try {
    await fake.reset();
    const dataDir = tempDataDir();
    const err = await chat(sw.spendwallFetch({ socketPath: d.socket, dataDir, configDir: configDirWith(undefined) })).then(() => undefined, (e) => e);
    if (!(err instanceof sw.DaemonUnavailableError)) return assert.fail(`expected DaemonUnavailableError, got ${err}`);
    assert.equal(err.reason, 'connection_lost');
    assert.match(err.message, /closed the connection before answering POST \/v1\/check/);
    assert.deepEqual(d.requests, ['POST /v1/check HTTP/1.1']);
    await sw.flush();
    assert.deepEqual(await fake.calls(), []);
    assert.deepEqual(spoolLines(dataDir), []);
  } finally {
    d.close();
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
