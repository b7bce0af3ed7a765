/**
 * The official SDKs behind Spendwall: both accept a `fetch` option, so the wrapped fetch is the
 * whole integration and works with any version of them. The SDK packages are peer
 * dependencies, loaded only when these helpers are called.
 */
import { SpendwallError } from './errors';
import { ORIGINAL_FETCH, spendwallFetch, type FetchLike, type SpendwallFetchOptions } from './fetch';

/** Options of `createSpendwallOpenAI()` / `createSpendwallAnthropic()`. */
export interface SpendwallClientOptions extends SpendwallFetchOptions {
  /** Passed to the SDK's client constructor (`apiKey`, `baseURL`, `maxRetries`, ...). Its `fetch`, if any, is the one wrapped. */
  clientOptions?: { [key: string]: unknown };
}

function loadPeer(name: string, helper: string, className: string): new (options: object) => unknown {
  let mod: { [key: string]: unknown };
  try {
    mod = require(name);
  } catch (e) {
    const err = e as NodeErrnoError;
    if (err.code === 'MODULE_NOT_FOUND' && err.message.includes(`'${name}'`)) {
      throw new SpendwallError(
        `${helper}() needs the '${name}' package, which is not installed: run \`npm install ${name}\` ` +
          `(or build the client yourself with new ${className}({ fetch: spendwallFetch() }))`,
        { code: 'missing_peer_dependency', cause: e },
      );
    }
    if (err.code === 'ERR_REQUIRE_ESM') {
      throw new SpendwallError(
        `${helper}(): this version of '${name}' cannot be loaded with require(); ` +
          `build the client yourself: new ${className}({ fetch: spendwallFetch() })`,
        { code: 'missing_peer_dependency', cause: e },
      );
    }
    throw e;
  }
  const cls = (mod[className] ?? (mod.default as { [key: string]: unknown } | undefined)?.[className] ?? mod.default ?? mod) as unknown;
  if (typeof cls !== 'function') {
    throw new SpendwallError(`${helper}(): the '${name}' package has no ${className} class`, { code: 'missing_peer_dependency' });
  }
  return cls as new (options: object) => unknown;
}

function create(name: string, helper: string, className: string, options: SpendwallClientOptions): any {
  const { clientOptions = {}, ...rest } = options;
  const Client = loadPeer(name, helper, className);
  const inner = (rest.fetch ?? clientOptions.fetch) as FetchLike | undefined;
  return new Client({ ...clientOptions, fetch: spendwallFetch({ ...rest, fetch: inner }) });
}

/**
 * `new OpenAI({ ...clientOptions, fetch: spendwallFetch(options) })`, loading the `openai`
 * package at run time. Throws a `SpendwallError` (code `missing_peer_dependency`) naming the
 * package when it is not installed.
 */
export function createSpendwallOpenAI<Client = any>(options: SpendwallClientOptions = {}): Client {
  return create('openai', 'createSpendwallOpenAI', 'OpenAI', options);
}

/** `new Anthropic({ ...clientOptions, fetch: spendwallFetch(options) })`, loading `@anthropic-ai/sdk` at run time. */
export function createSpendwallAnthropic<Client = any>(options: SpendwallClientOptions = {}): Client {
  return create('@anthropic-ai/sdk', 'createSpendwallAnthropic', 'Anthropic', options);
}

function wrapClient<C>(client: C, helper: string, options: SpendwallFetchOptions): C {
  const c = client as unknown as { fetch?: unknown };
  if (c === null || typeof c !== 'object' || typeof c.fetch !== 'function') {
    throw new SpendwallError(
      `${helper}(): this client has no 'fetch' to wrap (the official SDKs keep the fetch they were given on ` +
        `client.fetch); build it with { fetch: spendwallFetch() } instead`,
      { code: 'unsupported_client' },
    );
  }
  const current = c.fetch as FetchLike & { [ORIGINAL_FETCH]?: FetchLike };
  // wrapping twice replaces the first wrapper instead of stacking two
  const inner = ORIGINAL_FETCH in current ? current[ORIGINAL_FETCH] : current;
  c.fetch = spendwallFetch({ ...options, fetch: inner ?? options.fetch });
  return client;
}

/**
 * Puts an existing OpenAI client behind Spendwall by wrapping the fetch it holds (openai >= 4
 * keeps it on `client.fetch`) and returns the same client. Clients copied from it later with
 * `withOptions()` keep the wrapper.
 */
export function wrapOpenAI<C>(client: C, options: SpendwallFetchOptions = {}): C {
  return wrapClient(client, 'wrapOpenAI', options);
}

/** The same for an existing Anthropic client. */
export function wrapAnthropic<C>(client: C, options: SpendwallFetchOptions = {}): C {
  return wrapClient(client, 'wrapAnthropic', options);
}
