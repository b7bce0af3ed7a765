/** spendwallFetch with Node's own fetch against the real daemon and the fake provider (OpenAI wire format). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as sw from '../dist/cjs/index';
import { Daemon, Fake, decode, expected, isolateEnv, newAgent, readAll, sleep, tempDataDir, usageOf, type Row } from './support/harness';

let daemon: Daemon;
let fake: Fake;
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
  return f(fake.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** Ids and timestamps differ per request; everything else must not. */
function normalizeIds(s: string): string {
  return s
    .replace(/chatcmpl-[0-9a-f]+/g, 'ID')
    .replace(/cmpl-[0-9a-f]+/g, 'ID')
    .replace(/(resp|msg)_[0-9a-f]+/g, 'ID')
    .replace(/"(created|created_at)": \d+/g, '"$1": 0');
}

async function lastCall(): Promise<Row> {
  const calls = await fake.calls();
  return calls[calls.length - 1];
}

test('chat plain: ledger row equals the fake usage, attribution recorded, body forwarded unchanged', async () => {
  const agent = newAgent();
  await fake.reset();
  const f = wrapped({ agent, tags: { team: 'core' }, session: 's-1' });
  const u = '120,35,80,0,12';
  const body = { model: 'gpt-4o', messages: MSG, max_tokens: 50 };
  const res = await post(f, '/v1/chat/completions', body, { 'x-fake-usage': u });
  assert.equal(res.status, 200);
  assert.equal(res.url, fake.url + '/v1/chat/completions');
  const json = (await res.json()) as Row;
  assert.equal(json.usage.prompt_tokens, 200);
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.deepEqual(usageOf(row), expected(u, 'openai'));
  assert.deepEqual([row.provider, row.model, row.outcome, row.path, row.status], ['openai', 'gpt-4o', 'ok', 'sdk', 200]);
  assert.deepEqual(row.tags, { team: 'core' });
  assert.equal(row.session, 's-1');
  assert.ok(String(row.reservation_id).startsWith('r_') && row.cost_nanousd > 0);
  assert.equal(row.app, 'node'); // the kernel's view of the caller: node running this test file
  const [req] = await fake.calls();
  assert.equal(req.body, JSON.stringify(body)); // exactly the caller's bytes
});

test('chat stream without include_usage: usage asked for, usage chunk hidden, bytes equal the bare stream', async () => {
  const agent = newAgent();
  await fake.reset();
  const u = '40,9,8,0,3';
  const body = { model: 'gpt-4o', messages: MSG, stream: true };
  const bare = decode(await readAll(await post(fetch, '/v1/chat/completions', body, { 'x-fake-usage': u })));
  const res = await post(wrapped({ agent }), '/v1/chat/completions', body, { 'x-fake-usage': u });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const seen = decode(await readAll(res));
  assert.equal(normalizeIds(seen), normalizeIds(bare));
  assert.ok(!seen.includes('"usage"'));
  const [bareReq, wrappedReq] = await fake.calls();
  assert.equal(JSON.parse(bareReq.body).stream_options, undefined);
  assert.deepEqual(JSON.parse(wrappedReq.body).stream_options, { include_usage: true });
  assert.ok(wrappedReq.response_body.includes('"choices": [], "usage": {')); // upstream did send it
  assert.equal(wrappedReq.headers['content-length'], String(Buffer.byteLength(wrappedReq.body)));
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.deepEqual(usageOf(row), expected(u, 'openai'));
  assert.equal(row.outcome, 'ok');
});

test('chat stream with include_usage asked by the caller: byte-identical to what the provider sent', async () => {
  const agent = newAgent();
  await fake.reset();
  const u = '7,5,0,0,0';
  const body = { model: 'gpt-4o-mini', messages: MSG, stream: true, stream_options: { include_usage: true } };
  const bare = decode(await readAll(await post(fetch, '/v1/chat/completions', body, { 'x-fake-usage': u })));
  const seen = decode(await readAll(await post(wrapped({ agent }), '/v1/chat/completions', body, { 'x-fake-usage': u })));
  const rec = await lastCall();
  assert.equal(seen, rec.response_body); // every byte the fake sent, nothing else
  assert.equal(normalizeIds(seen), normalizeIds(bare));
  assert.equal(rec.body, JSON.stringify(body));
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.deepEqual(usageOf(row), expected(u, 'openai'));
});

for (const hidden of [false, true]) {
  // the fake sends its first event at once and the next one a minute later: a wrapper that
  // buffered the stream (or waited for a second event) would hand nothing over before then, and
  // the test's timeout would fail it
  test(`the caller gets each event as it arrives, the provider still streaming (${hidden ? 'usage chunk hidden' : 'pass-through'})`, { timeout: 30_000 }, async () => {
    const agent = newAgent();
    await fake.reset();
    const body = { model: 'gpt-4o', messages: MSG, stream: true, ...(hidden ? {} : { stream_options: { include_usage: true } }) };
    const res = await post(wrapped({ agent }), '/v1/chat/completions', body, { 'x-fake-scenario': 'slow-stream', 'x-fake-delay-ms': '60000' });
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.ok(!first.done && decode(first.value!).startsWith('data: {'));
    const [rec] = await fake.calls();
    assert.equal(rec.response_status, null); // the provider has not finished its answer
    await reader.cancel();
    await sw.flush();
    const [row] = await daemon.rows(agent, 1);
    assert.equal(row.outcome, 'partial');
  });
}

test('responses plain and streaming; legacy completions plain and streaming; embeddings', async () => {
  const agent = newAgent();
  await fake.reset();
  const f = wrapped({ agent });
  const us = ['50,20,10,0,15', '60,21,0,0,4', '9,4,0,0,0', '8,3,0,0,0', '5,0,0,0,0'];
  const r1 = (await (await post(f, '/v1/responses', { model: 'gpt-4o', input: 'hi', max_output_tokens: 100 }, { 'x-fake-usage': us[0] })).json()) as Row;
  assert.equal(r1.status, 'completed');
  await sw.flush(); // reports run in the background: one at a time keeps the ledger in call order
  const events = decode(await readAll(await post(f, '/v1/responses', { model: 'gpt-4o', input: 'hi', stream: true }, { 'x-fake-usage': us[1] })));
  assert.ok(events.includes('event: response.completed'));
  assert.equal(events, (await lastCall()).response_body);
  await sw.flush();
  await (await post(f, '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'x', max_tokens: 20 }, { 'x-fake-usage': us[2] })).json();
  await sw.flush();
  const bare = decode(await readAll(await post(fetch, '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'x', stream: true })));
  const legacy = decode(await readAll(await post(f, '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'x', stream: true }, { 'x-fake-usage': us[3] })));
  assert.equal(normalizeIds(legacy), normalizeIds(bare)); // injected usage chunk hidden
  await sw.flush();
  await (await post(f, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }, { 'x-fake-usage': us[4] })).json();
  await sw.flush();
  const rows = await daemon.rows(agent, 5);
  assert.deepEqual(rows.map(usageOf), us.map((u) => expected(u, 'openai')));
  assert.ok(rows.every((r) => r.outcome === 'ok'));
  assert.deepEqual(rows.map((r) => r.model), ['gpt-4o', 'gpt-4o', 'gpt-3.5-turbo-instruct', 'gpt-3.5-turbo-instruct', 'text-embedding-3-small']);
});

for (const code of [400, 401, 429, 500]) {
  test(`provider error ${code}: the caller gets the provider's answer unchanged, the row says error`, async () => {
    const agent = newAgent();
    const body = { model: 'gpt-4o', messages: MSG };
    const bare = await post(fetch, '/v1/chat/completions', body, { 'x-fake-scenario': `error-${code}` });
    const res = await post(wrapped({ agent }), '/v1/chat/completions', body, { 'x-fake-scenario': `error-${code}` });
    assert.equal(res.status, bare.status);
    assert.equal(res.statusText, bare.statusText);
    assert.deepEqual(await res.json(), await bare.json());
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.ok(res.headers.get('x-request-id'));
    await sw.flush();
    const [row] = await daemon.rows(agent, 1);
    assert.deepEqual([row.outcome, row.status, row.input_tokens, row.output_tokens], ['error', code, 0, 0]);
  });
}

async function brokenRead(res: Response): Promise<{ chunks: string[]; error: unknown }> {
  const reader = res.body!.getReader();
  const chunks: string[] = [];
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) return { chunks, error: undefined };
      chunks.push(decode(r.value!));
    }
  } catch (e) {
    return { chunks, error: e };
  }
}

test('broken stream: same chunks and the same error as the bare fetch, reported partial', async () => {
  const agent = newAgent();
  const body = { model: 'gpt-4o', messages: MSG, stream: true, stream_options: { include_usage: true } };
  const h = { 'x-fake-scenario': 'broken-stream' };
  const bare = await brokenRead(await post(fetch, '/v1/chat/completions', body, h));
  const got = await brokenRead(await post(wrapped({ agent }), '/v1/chat/completions', body, h));
  assert.ok(bare.error instanceof Error && got.error instanceof Error);
  assert.equal((got.error as Error).name, (bare.error as Error).name);
  assert.equal((got.error as Error).message, (bare.error as Error).message);
  assert.equal(normalizeIds(got.chunks.join('')), normalizeIds(bare.chunks.join('')));
  assert.equal(got.chunks.join('').split('\n\n').length - 1, 3);
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.equal(row.outcome, 'partial');
  assert.ok(row.input_tokens > 0 && row.output_tokens > 0); // estimates: request bytes, text received
});

test('hidden-usage stream that breaks: partial too', async () => {
  const agent = newAgent();
  const got = await brokenRead(await post(wrapped({ agent }), '/v1/chat/completions', { model: 'gpt-4o', messages: MSG, stream: true }, { 'x-fake-scenario': 'broken-stream' }));
  assert.ok(got.error instanceof Error);
  await sw.flush();
  assert.equal((await daemon.rows(agent, 1))[0].outcome, 'partial');
});

test('abandoned stream (the caller cancels after two chunks): partial, upstream let go', async () => {
  const agent = newAgent();
  await fake.reset();
  const res = await post(wrapped({ agent }), '/v1/chat/completions', { model: 'gpt-4o', messages: MSG, stream: true }, {
    'x-fake-scenario': 'slow-stream',
    'x-fake-delay-ms': '30',
  });
  const reader = res.body!.getReader();
  await reader.read();
  await reader.read();
  await reader.cancel();
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.equal(row.outcome, 'partial');
  assert.ok(row.output_tokens > 0);
  for (let i = 0; i < 40; i++) {
    const [rec] = await fake.calls();
    if (rec.response_status !== null) {
      assert.equal(rec.complete, false); // the provider saw the client go away
      return;
    }
    await sleep(50);
  }
  assert.fail('the fake provider never finished the abandoned stream');
});

test('abandoned stream dropped without cancel: reported partial when collected', async () => {
  const agent = newAgent();
  const v8 = require('node:v8');
  const vm = require('node:vm');
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  await (async () => {
    const res = await post(wrapped({ agent }), '/v1/chat/completions', { model: 'gpt-4o', messages: MSG, stream: true });
    const reader = res.body!.getReader();
    await reader.read();
  })();
  for (let i = 0; i < 50; i++) {
    gc();
    await sleep(20);
    await sw.flush();
    const rows = await daemon.rows(agent, undefined);
    if (rows.length) {
      assert.equal(rows[0].outcome, 'partial');
      return;
    }
  }
  assert.fail('the dropped stream was never reported');
});

test('blocked call: BudgetExceededError with the cap, nothing sent upstream', async () => {
  await fake.reset();
  const f = wrapped({ agent: 'capped-tiny' });
  let err: unknown;
  try {
    await post(f, '/v1/chat/completions', { model: 'gpt-4o', messages: MSG });
  } catch (e) {
    err = e;
  }
  if (!(err instanceof sw.BudgetExceededError)) return assert.fail(`expected BudgetExceededError, got ${err}`);
  assert.ok(err instanceof sw.SpendwallError);
  assert.equal(err.code, 'cap_exceeded');
  assert.equal(err.name, 'BudgetExceededError');
  assert.equal(err.capName, 'tiny');
  assert.equal(err.window, '1d');
  assert.equal(err.limitNanousd, 1000);
  assert.equal(err.limitUsd, 1e-6);
  assert.equal(typeof err.spentNanousd, 'number');
  assert.equal(err.status, 200);
  assert.match(err.message, /cap 'tiny' \(1d\) would be exceeded/);
  // streaming calls are blocked the same way
  await assert.rejects(post(f, '/v1/chat/completions', { model: 'gpt-4o', messages: MSG, stream: true }), sw.BudgetExceededError);
  assert.deepEqual(await fake.calls(), []);
});

test('approval caps: a denied call throws ApprovalDeniedError before anything goes upstream; an approved one goes through', async () => {
  await fake.reset();
  const agent = 'approve-node'; // the harness's "ask-first" cap: every call of this agent waits for a person
  const f = wrapped({ agent });
  const u = '9,4,0,0,0';
  const call = () => post(f, '/v1/chat/completions', { model: 'gpt-4o', messages: MSG, max_tokens: 16 }, { 'x-fake-usage': u });
  const denied = call().then(() => undefined, (e) => e);
  const id = await daemon.resolveApproval(agent, 'deny', 'not today');
  const err = await denied;
  if (!(err instanceof sw.ApprovalDeniedError)) return assert.fail(`expected ApprovalDeniedError, got ${err}`);
  assert.ok(err instanceof sw.SpendwallError);
  assert.equal(err.code, 'approval_denied');
  assert.equal(err.name, 'ApprovalDeniedError');
  assert.equal(err.body.approval_id, id);
  assert.match(err.message, /not today/);
  assert.deepEqual(await fake.calls(), []);

  const approved = call();
  await daemon.resolveApproval(agent, 'approve');
  const res = await approved;
  assert.equal(res.status, 200);
  await res.json();
  await sw.flush();
  const rows = await daemon.rows(agent, 2);
  assert.deepEqual(rows.map((r) => r.outcome), ['blocked', 'ok']);
  assert.deepEqual(usageOf(rows[1]), expected(u, 'openai'));
  assert.equal((await fake.calls()).length, 1);
});

test('attribution: configure < spendwallFetch options < withAttribution < headers; our headers never leave', async () => {
  const agent = newAgent();
  await fake.reset();
  sw.configure({ tags: { env: 'test', a: '0' }, session: 'conf' });
  try {
    const f = wrapped({ agent, tags: { a: '1' } });
    const body = { model: 'gpt-4o', messages: MSG };
    await (await post(f, '/v1/chat/completions', body)).json();
    await sw.flush();
    await sw.withTags({ customer: 'acme' }, async () => {
      await (await post(f, '/v1/chat/completions', body)).json();
      await sw.flush();
      await (await post(f, '/v1/chat/completions', body, { 'X-Spendwall-Tags': 'a=2,pr=1234', 'x-spendwall-session': 's-9' })).json();
      await sw.flush();
    });
    await sw.withAttribution({ agent: agent + '-ctx' }, async () => {
      await (await post(f, '/v1/chat/completions', body)).json();
      await sw.flush();
    });
    await (await post(f, '/v1/chat/completions', body, { 'x-spendwall-agent': agent + '-hdr', 'x-spendwall-tags': '{"json": "yes"}' })).json();
    await sw.flush();
  } finally {
    sw.configure({ tags: null, session: null });
  }
  await sw.flush();
  const rows = await daemon.rows(agent, 3);
  assert.deepEqual(rows.map((r) => r.tags), [
    { env: 'test', a: '1' },
    { env: 'test', a: '1', customer: 'acme' },
    { env: 'test', a: '2', customer: 'acme', pr: '1234' },
  ]);
  assert.deepEqual(rows.map((r) => r.session), ['conf', 'conf', 's-9']);
  assert.equal((await daemon.rows(agent + '-ctx', 1)).length, 1);
  const [hdr] = await daemon.rows(agent + '-hdr', 1);
  assert.deepEqual(hdr.tags, { env: 'test', a: '1', json: 'yes' });
  for (const r of await fake.calls()) {
    // Only the reservation goes along (to a loopback server, for Spendwall's own proxy).
    assert.deepEqual(Object.keys(r.headers).filter((k) => k.startsWith('x-spendwall') && k !== 'x-spendwall-reservation'), []);
    assert.match(r.headers['x-spendwall-reservation'] as string, /^r_[0-9a-f]{32}$/);
  }
});

test('non-billable requests pass through untouched (same Response object), our headers removed', async () => {
  await fake.reset();
  const sentinel = new Response('x');
  const seen: [unknown, unknown][] = [];
  const inner: sw.FetchLike = async (input, init) => {
    seen.push([input, init]);
    return sentinel;
  };
  const f = wrapped({ fetch: inner });
  const init = { headers: { authorization: 'Bearer k' } };
  assert.equal(await f(fake.url + '/v1/models', init), sentinel);
  assert.equal(seen[0][1], init); // not even copied
  assert.equal(await f(fake.url + '/v1/chat/completions'), sentinel); // a GET: not billable
  await f(fake.url + '/v1/models', { headers: { 'x-spendwall-agent': 'a', accept: 'application/json' } });
  assert.deepEqual(seen[2][1], { headers: [['accept', 'application/json']] });
  // and for real, through Node's fetch
  const res = await wrapped()(fake.url + '/v1/models', { headers: { 'x-spendwall-agent': 'nobody' } });
  assert.equal(res.status, 200);
  const [rec] = await fake.calls();
  assert.equal(rec.headers['x-spendwall-agent'], undefined);
});

test('Request objects, byte bodies, Headers instances, Azure deployment paths', async () => {
  const agent = newAgent();
  await fake.reset();
  const f = wrapped({ agent });
  const body = JSON.stringify({ model: 'gpt-4o', messages: MSG, stream: true });
  const req = new Request(fake.url + '/v1/chat/completions', { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-spendwall-session': 'req', 'x-fake-usage': '3,2,1,0,0' } });
  const text = decode(await readAll(await f(req)));
  assert.ok(text.endsWith('data: [DONE]\n\n') && !text.includes('"usage"'));
  await sw.flush();
  const headers = new Headers({ 'content-type': 'application/json', 'x-fake-usage': '4,3,0,0,0', 'x-spendwall-session': 'bytes' });
  await (await f(fake.url + '/v1/chat/completions', { method: 'POST', headers, body: new TextEncoder().encode(JSON.stringify({ model: 'gpt-4o', messages: MSG })) })).json();
  await sw.flush();
  await (await post(f, '/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21', { messages: MSG }, { 'x-fake-usage': '6,1,0,0,0' })).json();
  await sw.flush();
  const rows = await daemon.rows(agent, 3);
  assert.deepEqual(rows.map((r) => [r.session, r.input_tokens, r.model]), [
    ['req', 3, 'gpt-4o'],
    ['bytes', 4, 'gpt-4o'],
    [undefined, 6, 'my-gpt4o'],
  ]);
  const calls = await fake.calls();
  assert.deepEqual(JSON.parse(calls[0].body).stream_options, { include_usage: true });
  assert.equal(calls[0].headers['x-spendwall-session'], undefined);
  assert.equal(calls[1].headers['x-spendwall-session'], undefined);
});

test('upstream unreachable: the fetch error reaches the caller unchanged, the row says error', async () => {
  const agent = newAgent();
  const f = wrapped({ agent });
  const url = 'http://127.0.0.1:9/v1/chat/completions'; // discard port: refused
  const init = () => ({ method: 'POST', body: JSON.stringify({ model: 'gpt-4o', messages: MSG }) });
  const bareErr = (await fetch(url, init()).then(() => undefined, (e) => e)) as Error;
  const err = (await f(url, init()).then(() => undefined, (e) => e)) as Error;
  assert.ok(err instanceof TypeError && bareErr instanceof TypeError);
  assert.equal(err.message, bareErr.message);
  await sw.flush();
  const [row] = await daemon.rows(agent, 1);
  assert.equal(row.outcome, 'error');
  assert.equal(row.status, undefined);
});

test('aborted by the caller: the AbortError reaches the caller, the row says disconnected', async () => {
  const agent = newAgent();
  const ac = new AbortController();
  const p = wrapped({ agent })(fake.url + '/v1/chat/completions', {
    method: 'POST',
    body: JSON.stringify({ model: 'gpt-4o', messages: MSG }),
    headers: { 'x-fake-delay-ms': '500' },
    signal: ac.signal,
  });
  setTimeout(() => ac.abort(), 100);
  const err = await p.then(() => undefined, (e) => e as Error);
  assert.equal(err?.name, 'AbortError');
  await sw.flush();
  assert.equal((await daemon.rows(agent, 1))[0].outcome, 'disconnected');
});

test('malformed x-spendwall headers are a TypeError before anything is sent', async () => {
  await fake.reset();
  const f = wrapped();
  await assert.rejects(post(f, '/v1/chat/completions', { model: 'gpt-4o', messages: MSG }, { 'x-spendwall-tags': 'no-equals-sign' }), TypeError);
  await assert.rejects(post(f, '/v1/chat/completions', { model: 'gpt-4o', messages: MSG }, { 'x-spendwall-mode': 'loose' }), TypeError);
  assert.deepEqual(await fake.calls(), []);
});
