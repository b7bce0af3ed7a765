/**
 * The two daemon settings the SDK follows, read from the daemon's own `spendwall.toml`:
 * `[policy] fail_mode` (an unreachable daemon fails the call when it is `"closed"`) and
 * `[policy] approval_timeout` (how long the daemon may hold a check for a person's decision,
 * which the check request must outlast). A minimal reader of those keys, no TOML dependency.
 * The file is read only when one of them is needed (an unreachable daemon, a check still
 * unanswered at the configured timeout), cached, and read again when it changes on disk.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** What the SDK takes from `[policy]`; a key that is missing or malformed is undefined. */
export interface DaemonPolicy {
  failMode: 'open' | 'closed' | undefined;
  approvalTimeoutMs: number | undefined;
}

/** The daemon's default `approval_timeout` ("5m"). */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 5 * 60_000;

/** Knobs for tests: how long a check waits past the daemon's approval timeout for its answer. */
export const tuning = { approvalMarginMs: 30_000 };

/** `$SPENDWALL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/spendwall`, else `~/.config/spendwall` (the daemon's own order). */
export function defaultConfigDir(): string {
  const env = process.env.SPENDWALL_CONFIG_DIR;
  if (env) return env;
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'spendwall');
}

const NONE: DaemonPolicy = { failMode: undefined, approvalTimeoutMs: undefined };

/** A duration as the daemon writes it: a positive whole number and one of s, m, h, d ("30s", "5m"). */
export function parseDuration(text: string): number | undefined {
  const m = /^([0-9]+)([smhd])$/.exec(text);
  if (!m) return undefined;
  const count = Number(m[1]);
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  if (!(count > 0) || count * unit > 3650 * 86_400_000) return undefined;
  return count * unit;
}

/** A TOML key: bare, or one quoted key; dotted keys give their parts. */
function keyParts(raw: string): string[] {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(\.|$)/y;
  let pos = 0;
  while (pos < raw.length) {
    re.lastIndex = pos;
    const m = re.exec(raw);
    if (!m) return [];
    parts.push(m[1] ?? m[2] ?? m[3]);
    pos = re.lastIndex;
    if (m[4] === '') break;
  }
  return parts;
}

/** A one-line string value (basic or literal) followed by nothing but a comment; else undefined. */
function stringValue(raw: string): string | undefined {
  const m = /^\s*(?:"((?:[^"\\\n]|\\.)*)"|'([^'\n]*)')\s*(?:#.*)?$/.exec(raw);
  if (!m) return undefined;
  if (m[2] !== undefined) return m[2];
  try {
    return JSON.parse(`"${m[1]}"`) as string;
  } catch {
    return undefined;
  }
}

/**
 * Reads `fail_mode` and `approval_timeout` of the `[policy]` table (or root keys
 * `policy.fail_mode = ...`). Everything else in the file is skipped, not validated: the daemon
 * validates its own file.
 */
export function parsePolicy(text: string): DaemonPolicy {
  const out: DaemonPolicy = { failMode: undefined, approvalTimeoutMs: undefined };
  let table: string[] | null = []; // null: an array of tables, whose keys are never [policy]'s
  let multiline: string | null = null; // inside a multi-line string: its closing quotes
  for (const line of text.split(/\r?\n/)) {
    if (multiline !== null) {
      if (line.includes(multiline)) multiline = null;
      continue;
    }
    const s = line.trim();
    if (s === '' || s.startsWith('#')) continue;
    if (s.startsWith('[[')) {
      table = null;
      continue;
    }
    if (s.startsWith('[')) {
      const end = s.indexOf(']');
      table = end > 0 ? keyParts(s.slice(1, end)) : null;
      continue;
    }
    const eq = s.indexOf('=');
    if (eq <= 0) continue;
    const value = s.slice(eq + 1);
    const opener = /^\s*("""|''')/.exec(value);
    if (opener && !value.trim().slice(3).includes(opener[1])) {
      multiline = opener[1];
      continue;
    }
    if (table === null) continue;
    const key = [...table, ...keyParts(s.slice(0, eq))];
    if (key.length !== 2 || key[0] !== 'policy') continue;
    const v = stringValue(value);
    if (v === undefined) continue;
    if (key[1] === 'fail_mode' && (v === 'open' || v === 'closed')) out.failMode = v;
    else if (key[1] === 'approval_timeout') {
      const ms = parseDuration(v);
      if (ms !== undefined) out.approvalTimeoutMs = ms;
    }
  }
  return out;
}

interface Cached {
  stamp: string;
  policy: DaemonPolicy;
}

const cache = new Map<string, Cached>();

/**
 * The `[policy]` settings of `<configDir>/spendwall.toml`: cached, and read again when the
 * file's modification time (or size, or inode: an editor's atomic rename) changes. A missing
 * or unreadable file gives no settings.
 */
export function daemonPolicy(configDir: string): DaemonPolicy {
  const file = path.join(configDir, 'spendwall.toml');
  let stamp: string;
  try {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st || !st.isFile()) {
      cache.delete(file);
      return NONE;
    }
    stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    return NONE;
  }
  const hit = cache.get(file);
  if (hit && hit.stamp === stamp) return hit.policy;
  let policy: DaemonPolicy;
  try {
    policy = parsePolicy(fs.readFileSync(file, 'utf8'));
  } catch {
    policy = NONE; // unreadable (permissions, a directory race): as if it were not there
  }
  cache.set(file, { stamp, policy });
  return policy;
}

/** How long the daemon may hold a check for an approval, per its config (default 5 minutes). */
export function approvalTimeoutMs(configDir: string): number {
  return daemonPolicy(configDir).approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;
}
