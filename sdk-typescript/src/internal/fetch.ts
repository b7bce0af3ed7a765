/**
 * `spendwallFetch()`: a fetch that puts OpenAI and Anthropic calls behind the daemon — check
 * before, forward, report the real usage after — and passes every other request through.
 */
import { Call, type Provider } from './call';
import {
  checkOptionKeys,
  cleanTags,
  configGeneration,
  configuredOptions,
  resolveSettings,
  resolvedStrict,
  type Attribution,
  type Settings,
  type SpendwallOptions,
} from './config';
import { currentAttribution, mergeAttribution } from './context';
import { SpendwallError, type JsonObject } from './errors';
import { runtimeFor, type Runtime } from './runtime';
import { StreamTracker, trackedBody } from './stream';
import { normalize, type Usage } from './usage';

/** The shape of `fetch` (what the openai and Anthropic SDKs accept as their `fetch` option). */
export type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/** Options of `spendwallFetch()`: the daemon options, the default attribution, and the fetch to wrap. */
export interface SpendwallFetchOptions extends SpendwallOptions {
  /** The fetch to wrap. Default: the global `fetch` at call time. */
  fetch?: FetchLike;
}

interface Endpoint {
  provider: Provider;
  endpoint: string;
}

/** Billable endpoints, matched on the end of the URL's path (so proxies and Azure paths match too). */
export function endpointOf(url: string): Endpoint | undefined {
  let end = url.length;
  const q = url.indexOf('?');
  if (q >= 0) end = q;
  const h = url.indexOf('#');
  if (h >= 0 && h < end) end = h;
  while (end > 0 && url.charCodeAt(end - 1) === 47) end--; // trailing '/'
  const p = url.slice(0, end);
  if (p.endsWith('/chat/completions')) return { provider: 'openai', endpoint: '/chat/completions' };
  if (p.endsWith('/responses')) return { provider: 'openai', endpoint: '/responses' };
  if (p.endsWith('/completions')) return { provider: 'openai', endpoint: '/completions' };
  if (p.endsWith('/embeddings')) return { provider: 'openai', endpoint: '/embeddings' };
  if (p.endsWith('/v1/messages')) return { provider: 'anthropic', endpoint: '/v1/messages' };
  return undefined;
}

const PREFIX = 'x-spendwall-';

function isRequest(x: unknown): x is Request {
  return typeof Request !== 'undefined' && x instanceof Request;
}

function urlOf(input: RequestInfo | URL): string {
  if (typeof input === 'string') return input;
  if (isRequest(input)) return input.url;
  return String(input);
}

type HeaderPairs = [string, string][];

/** Headers given as a plain object (not a `Headers`, an array or another iterable). */
function isPlainHeaders(h: HeadersInit): h is Record<string, string> {
  return !(typeof Headers !== 'undefined' && h instanceof Headers) && !Array.isArray(h) && typeof (h as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function';
}

/** Whether a plain object of headers holds an `x-spendwall-*` header (or a Content-Length to drop). */
function hasOwnHeaders(h: Record<string, string | undefined>, dropContentLength: boolean): boolean {
  for (const k of Object.keys(h)) {
    const v = h[k];
    if (v === undefined || v === null) continue;
    const lower = k.toLowerCase();
    if (lower.startsWith(PREFIX) || (dropContentLength && lower === 'content-length')) return true;
  }
  return false;
}

/**
 * Finds and removes `x-spendwall-*` headers. Returns undefined when there are none (the headers
 * are then forwarded as they are), else the found values and the headers without them.
 */
function takeHeaders(h: HeadersInit | undefined, dropContentLength: boolean): { found: Record<string, string>; rest: HeadersInit } | undefined {
  if (h === undefined || h === null) return undefined;
  if (isPlainHeaders(h) && !hasOwnHeaders(h, dropContentLength)) return undefined; // the usual case, without copying
  const found: Record<string, string> = {};
  let any = false;
  let hasLength = false;
  const pairs: HeaderPairs = [];
  const visit = (k: string, v: string) => {
    const lower = k.toLowerCase();
    if (lower.startsWith(PREFIX)) {
      found[lower.slice(PREFIX.length)] = v;
      any = true;
    } else if (lower === 'content-length') {
      hasLength = true;
      if (!dropContentLength) pairs.push([k, v]);
    } else {
      pairs.push([k, v]);
    }
  };
  if (typeof Headers !== 'undefined' && h instanceof Headers) h.forEach((v, k) => visit(k, v));
  else if (Array.isArray(h)) for (const [k, v] of h as HeaderPairs) visit(k, v);
  else if (typeof (h as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function') {
    for (const [k, v] of h as unknown as Iterable<[string, string]>) visit(k, v);
  } else {
    for (const k of Object.keys(h)) {
      const v = (h as Record<string, string | undefined>)[k];
      if (v !== undefined && v !== null) visit(k, String(v));
    }
  }
  if (!any && !(dropContentLength && hasLength)) return undefined;
  return { found, rest: pairs };
}

function parseTagsHeader(v: string): Record<string, string> {
  const s = v.trim();
  if (!s) return {};
  if (s.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch {
      throw new TypeError(`x-spendwall-tags: not valid JSON: ${s.slice(0, 80)}`);
    }
    return cleanTags(parsed, 'x-spendwall-tags') ?? {};
  }
  const out: Record<string, string> = {};
  for (const part of s.split(/[,;]/)) {
    if (!part.trim()) continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new TypeError(`x-spendwall-tags: expected key=value pairs separated by commas, got '${part.trim()}'`);
    out[decodeURIComponent(part.slice(0, eq).trim())] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return out;
}

function headerAttribution(found: Record<string, string>): Attribution {
  const a: Attribution = {};
  if (found.agent !== undefined) a.agent = found.agent;
  if (found.session !== undefined) a.session = found.session;
  if (found.tags !== undefined) a.tags = parseTagsHeader(found.tags);
  if (found.mode !== undefined) {
    const m = found.mode.trim().toLowerCase();
    if (m !== 'strict' && m !== 'default') throw new TypeError(`x-spendwall-mode must be 'strict' or 'default', got '${found.mode}'`);
    a.mode = m;
  }
  return a;
}

const textDecoder = new TextDecoder();

/**
 * The request body as text when it can be read without consuming it: at once for a body given
 * in `init` (no turn of the event loop), a promise for a `Request`'s own body.
 */
function bodyText(input: RequestInfo | URL, init: RequestInit | undefined): string | undefined | Promise<string> {
  const body = init?.body;
  if (body !== undefined && body !== null) {
    if (typeof body === 'string') return body;
    if (body instanceof Uint8Array) return textDecoder.decode(body);
    if (body instanceof ArrayBuffer) return textDecoder.decode(new Uint8Array(body));
    if (ArrayBuffer.isView(body)) return textDecoder.decode(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    return undefined; // a stream, form data, a blob: not JSON we can read without consuming it
  }
  if (isRequest(input) && input.body !== null && !input.bodyUsed) return input.clone().text();
  return undefined;
}

function isAbort(e: unknown, init: RequestInit | undefined): boolean {
  return (e as { name?: string })?.name === 'AbortError' || init?.signal?.aborted === true;
}

const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** The header that tells Spendwall's proxy a call was already checked (its live reservation). */
const RESERVATION_HEADER = 'x-spendwall-reservation';
const LOOPBACK_URL = /^https?:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\//i;

function rebuild(upstream: Response, body: BodyInit | null): Response {
  const res = new Response(NULL_BODY.has(upstream.status) ? null : body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: upstream.headers as HeadersInit,
  });
  // a constructed Response has no URL: keep the upstream one (the SDKs log it)
  try {
    Object.defineProperty(res, 'url', { value: upstream.url, enumerable: true });
    if (upstream.redirected) Object.defineProperty(res, 'redirected', { value: true, enumerable: true });
  } catch {
    // not configurable here: the URL is informational only
  }
  return res;
}

/** Resolves on the next turn of the event loop (after I/O callbacks already due). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function usageOfJSON(call: Call, text: string): Usage {
  try {
    const parsed = JSON.parse(text) as JsonObject;
    const u = normalize(call.provider, parsed?.usage);
    if (u) return u;
  } catch {
    // not JSON: estimated below
  }
  return { input_tokens: call.estimatedInput(), output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 };
}

/**
 * Resolved settings and runtime, and the attribution of `configure()` merged with the fetch's
 * own: redone when `configure()` is called, not on every call.
 */
class Resolver {
  private gen = -1;
  private resolved!: { settings: Settings; rt: Runtime; attribution: Attribution };
  constructor(private readonly options: SpendwallOptions, private readonly own: Attribution) {}
  get(): { settings: Settings; rt: Runtime; attribution: Attribution } {
    const g = configGeneration();
    if (g !== this.gen) {
      const settings = resolveSettings(this.options);
      const c = configuredOptions();
      // A program launched by `spendwall run` is in that session (SPENDWALL_SESSION) unless told otherwise.
      const session = c.session ?? (process.env.SPENDWALL_SESSION || undefined);
      const attribution = mergeAttribution(mergeAttribution({}, { agent: c.agent, tags: c.tags, session }), this.own);
      this.resolved = { settings, rt: runtimeFor(settings), attribution };
      this.gen = g;
    }
    return this.resolved;
  }
}

export const ORIGINAL_FETCH = Symbol.for('spendwall.originalFetch');

/**
 * Returns a `fetch` that puts OpenAI (`/chat/completions`, `/responses`, `/completions`,
 * `/embeddings`) and Anthropic (`/v1/messages`) POSTs behind the Spendwall daemon: a check
 * before anything goes upstream (throws `BudgetExceededError`, `KilledError`,
 * `ApprovalDeniedError`, or `DaemonUnavailableError` — see the README's fail modes), then the real usage
 * reported to the ledger in the background. Streams are handed over as they arrive. Every
 * other request goes to the wrapped fetch untouched (only `x-spendwall-*` headers are removed).
 *
 * Per-request headers, removed before forwarding: `x-spendwall-agent`, `x-spendwall-tags`
 * (`k=v,k2=v2` or a JSON object), `x-spendwall-session`, `x-spendwall-mode` (`strict`).
 */
export function spendwallFetch(options: SpendwallFetchOptions = {}): FetchLike {
  const { fetch: inner, ...daemonOptions } = options;
  checkOptionKeys(daemonOptions, 'spendwallFetch');
  if (inner !== undefined && typeof inner !== 'function') throw new TypeError('spendwallFetch: fetch must be a function');
  const ownAttribution = mergeAttribution(undefined, { agent: options.agent, tags: options.tags, session: options.session }, 'spendwallFetch');
  const resolver = new Resolver(daemonOptions, ownAttribution);
  const base = (): FetchLike => {
    const f = inner ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (typeof f !== 'function') throw new SpendwallError('spendwallFetch: no fetch to wrap (Node >= 18 has a global fetch; or pass options.fetch)', { code: 'no_fetch' });
    return f;
  };

  const wrapped = async function spendwallFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const fetchImpl = base();
    const url = urlOf(input);
    const target = endpointOf(url);
    const method = (init?.method ?? (isRequest(input) ? input.method : 'GET')).toUpperCase();
    if (target && method === 'POST' && isRequest(input) && init !== undefined) {
      // one Request carries everything, so what we change below cannot be overridden by init
      input = new Request(input, init);
      init = undefined;
    }
    const useInit = init?.headers !== undefined || !isRequest(input);

    if (!target || method !== 'POST') {
      // not billable: untouched, except that our own headers never leave the process
      const taken = takeHeaders(useInit ? init?.headers : (input as Request).headers, false);
      if (!taken) return fetchImpl(input, init);
      if (useInit) return fetchImpl(input, { ...init, headers: taken.rest });
      return fetchImpl(new Request(input as Request, { headers: taken.rest }), init);
    }

    const { settings, rt, attribution: baseAttribution } = resolver.get();
    const read = bodyText(input, init);
    const text = typeof read === 'object' ? await read : read;
    let request: JsonObject | undefined;
    if (text !== undefined) {
      try {
        const parsed = JSON.parse(text);
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) request = parsed;
      } catch {
        // not JSON: checked without the body (the provider will answer the error)
      }
    }

    // OpenAI chat/completions streams: ask for usage when the caller did not (hidden again below)
    let hide = false;
    let forwardBody: string | undefined;
    if (request && target.provider === 'openai' && request.stream === true && (target.endpoint === '/chat/completions' || target.endpoint === '/completions')) {
      const so = request.stream_options;
      const asked = so !== null && typeof so === 'object' && (so as JsonObject).include_usage === true;
      if (!asked) {
        hide = true;
        forwardBody = JSON.stringify({ ...request, stream_options: { ...(so !== null && typeof so === 'object' ? (so as JsonObject) : {}), include_usage: true } });
      }
    }

    const taken = takeHeaders(useInit ? init?.headers : (input as Request).headers, forwardBody !== undefined);
    // configure() < the fetch's options < withAttribution() blocks < x-spendwall-* headers
    let attribution = baseAttribution; // shared by the calls: never changed (merges copy it)
    const scoped = currentAttribution();
    if (scoped) attribution = mergeAttribution(attribution, scoped);
    if (taken) attribution = mergeAttribution(attribution, headerAttribution(taken.found), 'x-spendwall headers');

    let model = typeof request?.model === 'string' ? request.model : '';
    if (!model) {
      const m = /\/deployments\/([^/?#]+)\//.exec(url); // Azure: the deployment names the model
      model = m ? decodeURIComponent(m[1]) : 'unknown';
    }
    const call = new Call(rt, target.provider, model, request ? text : undefined, request, attribution, resolvedStrict(settings));
    await call.check();

    // what goes upstream: the caller's request, minus our headers, plus include_usage if we asked
    let fwdInput: RequestInfo | URL = input;
    let fwdInit: RequestInit | undefined = init;
    if (taken || forwardBody !== undefined) {
      if (useInit) {
        fwdInit = { ...init };
        if (taken) fwdInit.headers = taken.rest;
        if (forwardBody !== undefined) fwdInit.body = forwardBody;
      } else {
        const r: RequestInit = {};
        if (taken) r.headers = taken.rest;
        if (forwardBody !== undefined) r.body = forwardBody;
        fwdInput = new Request(input as Request, r);
      }
    }

    // The reservation goes along to a loopback server: when that is Spendwall's own proxy (as
    // under `spendwall run`), it passes the call through instead of checking it a second time.
    // A provider's own URL gets the request untouched.
    if (call.reservationId !== undefined && LOOPBACK_URL.test(url)) {
      if (useInit) {
        const headers = new Headers((fwdInit ?? init)?.headers);
        headers.set(RESERVATION_HEADER, call.reservationId);
        fwdInit = { ...(fwdInit ?? init), headers };
      } else {
        const headers = new Headers((fwdInput as Request).headers);
        headers.set(RESERVATION_HEADER, call.reservationId);
        fwdInput = new Request(fwdInput as Request, { headers });
      }
    }

    let upstream: Response;
    try {
      upstream = await fetchImpl(fwdInput, fwdInit);
    } catch (e) {
      call.reportSoon(undefined, undefined, isAbort(e, init) ? 'disconnected' : 'error');
      throw e;
    }

    const contentType = upstream.headers.get('content-type') ?? '';
    if (upstream.ok && upstream.body && contentType.includes('text/event-stream')) {
      const tracker = new StreamTracker(call, target.endpoint, hide, upstream.status);
      return rebuild(upstream, trackedBody(upstream.body, tracker));
    }

    // an error answer: passed through as it is (the SDK reads it), reported at once
    if (upstream.status >= 400 || !upstream.body) {
      if (upstream.status >= 400) call.reportSoon(undefined, upstream.status, 'error');
      else call.reportSoon(() => usageOfJSON(call, ''), upstream.status, 'ok');
      return upstream;
    }
    // a JSON answer: the caller gets the provider's Response itself; a clone of its body is read
    // on the side for the usage — from the next turn of the event loop, so that the caller reads
    // and parses its answer first (the clone keeps what arrives meanwhile) — and the report
    // goes out once the caller has had its answer
    const copy = upstream.clone();
    rt.track(
      nextTurn().then(() => copy.arrayBuffer()).then(
        (bytes) => call.reportSoon(() => usageOfJSON(call, textDecoder.decode(bytes)), upstream.status, 'ok'),
        (e) => call.reportSoon(undefined, upstream.status, isAbort(e, init) ? 'disconnected' : 'error'),
      ),
    );
    return upstream;
  };
  (wrapped as unknown as Record<symbol, unknown>)[ORIGINAL_FETCH] = inner;
  return wrapped;
}
