/** spendwallFetch against the real daemon and the fake provider (Anthropic wire format). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as sw from '../dist/cjs/index';
import { Daemon, Fake, decode, expected, isolateEnv, newAgent, readAll, tempDataDir, usageOf, type Row } from './support/harness';

let daemon: Daemon;
let fake: Fake;
const MODEL = 'claude-opus-4-5';
const MSG = [{ role: 'user', content: 'Say hello.' }];

before(async () => {
  isolateEnv();
  daemon = await new Daemon().start();
  fake = await new Fake().start();
});

after(async () => {
  await sw.flush();
  await fake.stop();
  await daemon.cleanup();
});

function wrapped(options: sw.SpendwallFetchOptions = {}): sw.FetchLike {
  return sw.spendwallFetch({ socketPath: daemon.socket, dataDir: tempDataDir(), ...options });
}

function post(f: sw.FetchLike, path: string, body: object, headers: Record<string, string> = {}): Promise<Response> {
  return f(fake.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-fake', 'anthropic-version': '2023-06-01', ...headers },
    body: JSON.stringify(body),
  });
}

test('messages plain: the row equals the fake usage (cache reads and writes apart)', async () => {
  const agent = newAgent();
  const u = '100,40,300,50,0';
  const res = await post(wrapped({ agent, tags: { customer: 'acme' } }), '/v1/messages', { model: MODEL, max_tokens: 64, messages: MSG }, { 'x-fake-usage': u });
  const msg = (await res.json()) as Row;
  assert.equal(msg.type, 'message');
  assert.ok(res.headers.get('request-id'));
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.deepEqual(usageOf(row), expected(u, 'anthropic'));
  assert.deepEqual([row.provider, row.model, row.outcome], ['anthropic', MODEL, 'ok']);
  assert.deepEqual(row.tags, { customer: 'acme' });
});

test('messages stream: byte-identical to what the provider sent, usage from message_start + message_delta', async () => {
  const agent = newAgent();
  await fake.reset();
  const u = '21,17,4,3,0';
  const body = { model: MODEL, max_tokens: 64, messages: MSG, stream: true };
  const seen = decode(await readAll(await post(wrapped({ agent }), '/v1/messages', body, { 'x-fake-usage': u })));
  const [rec] = await fake.calls();
  assert.equal(seen, rec.response_body);
  assert.equal(rec.body, JSON.stringify(body)); // no injection for Anthropic
  assert.ok(seen.startsWith('event: message_start') && seen.includes('event: message_stop'));
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.deepEqual(usageOf(row), expected(u, 'anthropic'));
  assert.equal(row.outcome, 'ok');
});

test('abandoned stream: partial with the input counts message_start gave, plus the text received', async () => {
  const agent = newAgent();
  const res = await post(wrapped({ agent }), '/v1/messages', { model: MODEL, max_tokens: 64, messages: MSG, stream: true }, {
    'x-fake-usage': '44,30,0,0,0',
    'x-fake-scenario': 'slow-stream',
    'x-fake-delay-ms': '20',
  });
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes('content_block_delta')) {
    const r = await reader.read();
    text += decode(r.value!);
  }
  await reader.cancel();
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.equal(row.outcome, 'partial');
  assert.equal(row.input_tokens, 44);
  assert.ok(row.output_tokens >= 1);
});

test('broken stream: partial keeps the usage known so far (input, cache read, cache write)', async () => {
  const agent = newAgent();
  const res = await post(wrapped({ agent }), '/v1/messages', { model: MODEL, max_tokens: 8, messages: MSG, stream: true }, {
    'x-fake-scenario': 'broken-stream',
    'x-fake-usage': '55,9,6,2,0',
  });
  await assert.rejects(readAll(res), (e: Error) => e instanceof TypeError && e.message === 'terminated');
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.equal(row.outcome, 'partial');
  assert.deepEqual([row.input_tokens, row.cache_read_tokens, row.cache_write_tokens], [55, 6, 2]);
});

test('count_tokens is not billed (passes through)', async () => {
  const agent = newAgent();
  const res = await post(wrapped({ agent }), '/v1/messages/count_tokens', { model: MODEL, messages: MSG });
  assert.deepEqual(await res.json(), { input_tokens: 11 });
  await sw.flush();
  assert.deepEqual(await daemon.rows(agent, undefined), []);
});

for (const code of [429, 500]) {
  test(`provider error ${code}: passed through, row says error`, async () => {
    const agent = newAgent();
    const res = await post(wrapped({ agent }), '/v1/messages', { model: MODEL, max_tokens: 8, messages: MSG }, { 'x-fake-scenario': `error-${code}` });
    assert.equal(res.status, code);
    assert.equal(((await res.json()) as Row).type, 'error');
    await sw.flush();
    const [row] = await daemon.rows(agent, 1);
    assert.deepEqual([row.outcome, row.status], ['error', code]);
  });
}
