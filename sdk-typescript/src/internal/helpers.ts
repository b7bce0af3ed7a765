/** The socket API's read side, for agents that plan their spend, and the spool on demand. */
import { checkOptionKeys, resolveSettings, type SpendwallOptions } from './config';
import { errorFromBody, type JsonObject } from './errors';
import { flushAll, runtimeFor, type ReplayCounts, type Runtime } from './runtime';

function rt(options: SpendwallOptions = {}): Runtime {
  checkOptionKeys(options, 'spendwall');
  return runtimeFor(resolveSettings(options));
}

async function get(path: string, options?: SpendwallOptions): Promise<JsonObject> {
  const { status, body } = await rt(options).transport.request('GET', path);
  if (status !== 200) throw errorFromBody(body, status);
  return body;
}

/** `GET /v1/policy/snapshot`: every cap with spent, reserved and remaining per key. */
export function snapshot(options?: SpendwallOptions): Promise<JsonObject> {
  return get('/v1/policy/snapshot', options);
}

/** `GET /v1/health`. */
export function health(options?: SpendwallOptions): Promise<JsonObject> {
  return get('/v1/health', options);
}

/**
 * Nano-USD left before the tightest matching cap blocks; `undefined` when no cap matches.
 * `scope` is a cap name (`'reviewer-daily'`), a scope object as in caps.toml
 * (`{ agent: 'code-reviewer' }`, `{ global: true }`), or omitted for every cap; `key` picks one
 * tracked value of a `"*"` cap (e.g. one agent's name).
 */
export async function remaining(
  scope?: string | { [key: string]: unknown },
  options: SpendwallOptions & { key?: string } = {},
): Promise<number | undefined> {
  const { key, ...rest } = options;
  const snap = await snapshot(rest);
  let best: number | undefined;
  for (const cap of (Array.isArray(snap.caps) ? snap.caps : []) as JsonObject[]) {
    if (typeof scope === 'string' && cap.name !== scope) continue;
    if (scope && typeof scope === 'object') {
      const capScope = (cap.scope ?? {}) as JsonObject;
      if (!Object.entries(scope).every(([k, v]) => capScope[k] === v)) continue;
    }
    for (const k of (Array.isArray(cap.keys) ? cap.keys : []) as JsonObject[]) {
      if (key !== undefined && k.key !== key) continue;
      const left = k.remaining_nanousd;
      if (typeof left === 'number' && (best === undefined || left < best)) best = left;
    }
  }
  return best;
}

/** The pre-flight cost range of a request body, as `POST /v1/estimate` answers it (nano-USD). */
export interface Estimate {
  model: string;
  priced: boolean;
  exact: boolean;
  input_tokens: number;
  max_output_tokens: number;
  min_cost_nanousd: number;
  max_cost_nanousd: number;
}

/** `POST /v1/estimate`. The provider defaults from the model (`claude*` is Anthropic). */
export async function estimate(
  request: { [key: string]: unknown },
  options: SpendwallOptions & { provider?: 'openai' | 'anthropic'; model?: string } = {},
): Promise<Estimate> {
  const { provider, model, ...rest } = options;
  const m = model ?? String(request.model ?? '');
  const body = { provider: provider ?? (m.startsWith('claude') ? 'anthropic' : 'openai'), model: m, request };
  const { status, body: answer } = await rt(rest).transport.request('POST', '/v1/estimate', body);
  if (status !== 200) throw errorFromBody(answer, status);
  return answer as unknown as Estimate;
}

/**
 * Replays spooled reports now (normally automatic once the daemon answers again) and returns
 * the counts: recorded, duplicate, rejected, pending. Rejects with `DaemonUnavailableError`
 * when the daemon cannot be reached.
 */
export async function replaySpool(options?: SpendwallOptions): Promise<ReplayCounts> {
  const r = rt(options);
  await r.flush();
  return r.replayNow();
}

/**
 * Waits until every report started so far has reached the daemon (or the spool). Reports run
 * in the background so that a call returns as soon as its answer does; call this before
 * `process.exit()` or in tests.
 */
export function flush(): Promise<void> {
  return flushAll();
}
