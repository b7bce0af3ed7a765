/**
 * Options: an explicit argument first, `configure()` second, the environment third, the
 * defaults last (the same order as the Python SDK).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultConfigDir } from './daemonconfig';
import type { Transport } from './transport';

/** Self-declared attribution of a call; the daemon adds the program the kernel says made it. */
export interface Attribution {
  agent?: string;
  /** Merged key by key with the tags of weaker levels. */
  tags?: Record<string, string>;
  session?: string;
  /** `'strict'` fails closed when the daemon cannot be reached (`'default'` never weakens a strict setting). */
  mode?: 'default' | 'strict';
}

/** Options for `configure()`, `spendwallFetch()` and the client helpers. */
export interface SpendwallOptions {
  /** The daemon's socket. Env `SPENDWALL_SOCKET`; default `$XDG_RUNTIME_DIR/spendwall/spendwall.sock`, else `/tmp/spendwall-$UID/spendwall.sock`. */
  socketPath?: string;
  /** The spool lives in `<dataDir>/spool/`. Env `SPENDWALL_DATA_DIR`; default `$XDG_DATA_HOME/spendwall` (`~/.local/share/spendwall`). */
  dataDir?: string;
  /**
   * Fail closed: an unreachable daemon throws `DaemonUnavailableError` before anything goes
   * upstream. Env `SPENDWALL_STRICT=1`; the daemon's `[policy] fail_mode = "closed"` does the same.
   * Fail closed wins: `strict: false` does not turn off a strict setting made elsewhere.
   */
  strict?: boolean;
  /**
   * The daemon's config directory, where the SDK reads `spendwall.toml`'s `[policy] fail_mode`
   * and `approval_timeout`. Env `SPENDWALL_CONFIG_DIR`; default `$XDG_CONFIG_HOME/spendwall`
   * (`~/.config/spendwall`).
   */
  configDir?: string;
  /**
   * Milliseconds to wait for a daemon answer. Default 30000. A check waits at least the
   * daemon's `approval_timeout` (default 5 minutes) plus 30 s, as it may be held for an approval.
   */
  timeout?: number;
  /** Milliseconds to wait for a connection to the daemon. Default 1000. */
  connectTimeout?: number;
  /** The spool's size cap in bytes; at the cap further reports are dropped with one warning. Default 64 MiB. */
  spoolMaxBytes?: number;
  agent?: string;
  tags?: Record<string, string>;
  session?: string;
  /** Talk to the daemon through this instead of the Unix socket (tests, other runtimes). */
  transport?: Transport;
}

/** The fully resolved daemon-side settings (attribution is resolved per call). */
export interface Settings {
  socketPath: string;
  dataDir: string;
  configDir: string;
  timeout: number;
  connectTimeout: number;
  spoolMaxBytes: number;
  transport: Transport | undefined;
  /** `strict: true` given explicitly or to `configure()`; SPENDWALL_STRICT is read at each call. */
  strict: boolean;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const OPTION_KEYS = new Set([
  'socketPath', 'dataDir', 'configDir', 'strict', 'timeout', 'connectTimeout', 'spoolMaxBytes', 'agent', 'tags', 'session', 'transport',
]);

export const DEFAULTS = { timeout: 30_000, connectTimeout: 1_000, spoolMaxBytes: 64 * 1024 * 1024 };

function uid(): number | string {
  return typeof process.getuid === 'function' ? process.getuid() : 'user';
}

export function defaultSocketPath(): string {
  const env = process.env.SPENDWALL_SOCKET;
  if (env) return env;
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (runtime) return path.join(runtime, 'spendwall', 'spendwall.sock');
  return `/tmp/spendwall-${uid()}/spendwall.sock`;
}

export function defaultDataDir(): string {
  const env = process.env.SPENDWALL_DATA_DIR;
  if (env) return env;
  const base = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'spendwall');
}

export function envStrict(): boolean {
  return TRUE.has((process.env.SPENDWALL_STRICT ?? '').trim().toLowerCase());
}

let configured: SpendwallOptions = {};
let generation = 0;

/** Changes whenever `configure()` is called (cached resolutions are redone then). */
export function configGeneration(): number {
  return generation;
}

export function configuredOptions(): SpendwallOptions {
  return configured;
}

export function checkOptionKeys(options: object, where: string): void {
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new TypeError(`${where}: unknown option '${key}'`);
  }
}

export function cleanTags(tags: unknown, where: string): Record<string, string> | undefined {
  if (tags === undefined || tags === null) return undefined;
  if (typeof tags !== 'object' || Array.isArray(tags)) throw new TypeError(`${where}: tags must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags as Record<string, unknown>)) {
    if (v === undefined || v === null) continue;
    out[k] = String(v);
  }
  return out;
}

/**
 * Sets process-wide options (weaker than the options given to `spendwallFetch()` or a client
 * helper, stronger than the environment). `undefined` or `null` resets an option to its default.
 */
export function configure(options: { [K in keyof SpendwallOptions]?: SpendwallOptions[K] | null }): SpendwallOptions {
  checkOptionKeys(options, 'configure');
  const next: Record<string, unknown> = { ...configured };
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined || v === null) delete next[k];
    else next[k] = k === 'tags' ? cleanTags(v, 'configure') : v;
  }
  configured = next as SpendwallOptions;
  generation++;
  return { ...configured };
}

/** Back to the defaults (tests). */
export function resetConfiguration(): void {
  configured = {};
  generation++;
}

function positive(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new TypeError(`spendwall: ${name} must be a positive number`);
  return v;
}

/** Explicit options over `configure()` over the environment over the defaults. */
export function resolveSettings(explicit: SpendwallOptions): Settings {
  const c = configured;
  return {
    socketPath: explicit.socketPath ?? c.socketPath ?? defaultSocketPath(),
    dataDir: explicit.dataDir ?? c.dataDir ?? defaultDataDir(),
    configDir: explicit.configDir ?? c.configDir ?? defaultConfigDir(),
    timeout: positive(explicit.timeout ?? c.timeout, 'timeout', DEFAULTS.timeout),
    connectTimeout: positive(explicit.connectTimeout ?? c.connectTimeout, 'connectTimeout', DEFAULTS.connectTimeout),
    spoolMaxBytes: positive(explicit.spoolMaxBytes ?? c.spoolMaxBytes, 'spoolMaxBytes', DEFAULTS.spoolMaxBytes),
    transport: explicit.transport ?? c.transport,
    strict: explicit.strict === true || c.strict === true, // fail closed wins
  };
}

/**
 * Strict when anything here says so: the options, `configure()` or SPENDWALL_STRICT (the call
 * adds its own `x-spendwall-mode` header, and the daemon's `fail_mode` when it cannot reach it).
 */
export function resolvedStrict(settings: Settings): boolean {
  return settings.strict || envStrict();
}
