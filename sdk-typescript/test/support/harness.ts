/** Test support: the real spendwall daemon on a temp socket, and the shared fake provider. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';

export const SDK_ROOT = path.resolve(__dirname, '..', '..');
export const REPO = path.resolve(SDK_ROOT, '..');
export const FAKE_SERVER = path.join(REPO, 'tests', 'fake_provider', 'server.py');

export const CAPS = `
[[cap]]
name = "tiny"
scope = { agent = "capped-tiny" }
window = "1d"
limit_usd = 0.000001
action = "block"

[[cap]]
name = "conc"
scope = { agent = "conc-node" }
window = "1d"
limit_usd = 0.05
action = "block"

[[cap]]
name = "helper-cap"
scope = { agent = "helper-agent" }
window = "1d"
limit_usd = 2.0
action = "block"

[[cap]]
name = "ask-first"
scope = { agent = "approve-node" }
window = "1d"
limit_usd = 0.000001
action = "approve"
`;

export type Row = { [key: string]: any };

export function daemonBinary(): string {
  const bin = process.env.SPENDWALL_BIN || path.join(REPO, '.build', 'debug', 'spendwall');
  if (!fs.existsSync(bin)) throw new Error(`spendwall binary not found at ${bin}: run \`swift build\` or set SPENDWALL_BIN`);
  return bin;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One HTTP request over a Unix socket, outside the SDK (the tests' own view of the daemon). */
export function unixRequest(socket: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const sock = net.createConnection({ path: socket });
    const chunks: NodeBuffer[] = [];
    sock.on('error', (e) => reject(e));
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => {
      const raw = Buffer.concat(chunks);
      const i = raw.indexOf('\r\n\r\n');
      const status = Number(raw.toString('latin1', 9, 12));
      const text = raw.subarray(i + 4).toString('utf8');
      resolve({ status, body: text ? JSON.parse(text) : {} });
    });
    sock.once('connect', () => {
      sock.write(`${method} ${p} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
    });
  });
}

export class Daemon {
  readonly root: string;
  readonly configDir: string;
  readonly dataDir: string;
  readonly socket: string;
  readonly logPath: string;
  proc: ChildProcess | null = null;

  /** `files`: more config files (e.g. `spendwall.toml`) written next to caps.toml. */
  constructor(caps: string = CAPS, files: Record<string, string> = {}) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'swts-')); // short: AF_UNIX paths are limited to 108 bytes
    this.configDir = path.join(this.root, 'config');
    this.dataDir = path.join(this.root, 'data');
    this.socket = path.join(this.root, 'run', 'spendwall.sock');
    this.logPath = path.join(this.root, 'daemon.log');
    fs.mkdirSync(this.configDir, { recursive: true });
    fs.writeFileSync(path.join(this.configDir, 'caps.toml'), caps);
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(this.configDir, name), text);
  }

  async start(): Promise<this> {
    const log = fs.openSync(this.logPath, 'a');
    // the loopback listener (proxy, /metrics) on a free port: test files run in parallel
    const env = {
      ...process.env,
      SPENDWALL_CONFIG_DIR: this.configDir,
      SPENDWALL_DATA_DIR: this.dataDir,
      SPENDWALL_SOCKET: this.socket,
      SPENDWALL_PROXY_ADDR: '127.0.0.1:0',
      SPENDWALL_LOG_LEVEL: 'warning',
    };
    const proc = spawn(daemonBinary(), ['daemon'], { env, stdio: ['ignore', log, log] });
    this.proc = proc;
    fs.closeSync(log);
    let exited: string | null = null;
    proc.on('exit', (code, sig) => (exited = `exit ${code} ${sig}`));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`daemon ${exited}: ${fs.readFileSync(this.logPath, 'utf8')}`);
      try {
        if ((await this.request('GET', '/v1/health')).status === 200) return this;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    throw new Error('daemon did not answer /v1/health within 30 s');
  }

  async stop(signal: string = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(t);
  }

  request(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    return unixRequest(this.socket, method, p, body);
  }

  async ledger(limit = 1000): Promise<Row[]> {
    const r = await this.request('GET', `/v1/ledger?limit=${limit}`);
    if (r.status !== 200) throw new Error(`ledger: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.rows;
  }

  /** Waits until a check of `agent` is held for an approval, then resolves it; returns the approval id. */
  async resolveApproval(agent: string, decision: 'approve' | 'deny', reason?: string, timeout = 10_000): Promise<string> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const r = await this.request('GET', '/v1/approvals');
      const held = ((r.body.approvals ?? []) as Row[]).find((a) => a.agent === agent);
      if (held) {
        const answer = await this.request('POST', `/v1/approvals/${held.id}/resolve`, reason === undefined ? { decision } : { decision, reason });
        if (answer.status !== 200) throw new Error(`resolve ${held.id}: ${answer.status} ${JSON.stringify(answer.body)}`);
        return held.id;
      }
      if (Date.now() > deadline) throw new Error(`no approval for ${agent} appeared`);
      await sleep(20);
    }
  }

  /** Ledger rows of one agent, oldest first; waits up to `timeout` ms for `expect` rows. */
  async rows(agent: string, expect?: number, timeout = 5000): Promise<Row[]> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const rows = (await this.ledger()).filter((r) => r.agent === agent);
      if (expect === undefined || rows.length >= expect || Date.now() > deadline) return rows.reverse();
      await sleep(50);
    }
  }

  /** The ledger's SQLite file. */
  get database(): string {
    return path.join(this.dataDir, 'spendwall.db');
  }

  async cleanup(): Promise<void> {
    await this.stop();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

export class Fake {
  proc: ChildProcess | null = null;
  port = 0;
  url = '';

  async start(): Promise<this> {
    const proc = spawn('python3', [FAKE_SERVER, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.proc = proc;
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      proc.stdout!.on('data', (d: NodeBuffer) => {
        buf += d.toString();
        const i = buf.indexOf('\n');
        if (i >= 0) resolve(buf.slice(0, i));
      });
      proc.on('exit', (code) => reject(new Error(`fake provider exited with ${code}`)));
    });
    if (!line.startsWith('PORT ')) throw new Error(`fake provider said ${line}`);
    this.port = Number(line.split(' ')[1]);
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  async requests(): Promise<Row[]> {
    const r = await fetch(`${this.url}/_fake/requests`);
    return (await r.json()) as Row[];
  }

  /** Requests to provider paths (the introspection endpoints are not recorded anyway). */
  async calls(): Promise<Row[]> {
    return (await this.requests()).filter((r) => !String(r.path).startsWith('/_fake'));
  }

  async reset(): Promise<void> {
    await fetch(`${this.url}/_fake/reset`, { method: 'POST' });
  }

  /** Answers the calls held by `x-fake-gate: <gate>` (and lets later ones through). */
  async release(gate: string): Promise<void> {
    await fetch(`${this.url}/_fake/release?gate=${encodeURIComponent(gate)}`, { method: 'POST' });
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await gone;
  }
}

/** The ledger usage for an x-fake-usage header (input, output, cache_read, cache_write, reasoning). */
export function expected(usage: string, provider: 'openai' | 'anthropic'): Row {
  const [i, o, cr, cw, r] = usage.split(',').map(Number);
  return {
    input_tokens: i,
    output_tokens: o,
    cache_read_tokens: cr,
    cache_write_tokens: provider === 'openai' ? 0 : cw,
    reasoning_tokens: provider === 'openai' ? r : 0,
  };
}

export function usageOf(row: Row): Row {
  const out: Row = {};
  for (const k of ['input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'reasoning_tokens']) out[k] = row[k] ?? 0;
  return out;
}

export function newAgent(): string {
  return 't-' + randomUUID().slice(0, 12);
}

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A private data dir per test (the spool), so no test touches the real home; removed at exit. */
export function tempDataDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'swts-data-'));
  tempDirs.push(d);
  return d;
}

export function spoolFile(dataDir: string): string {
  return path.join(dataDir, 'spool', 'reports.jsonl');
}

export function spoolLines(dataDir: string): Row[] {
  try {
    return fs
      .readFileSync(spoolFile(dataDir), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

/** Reads a whole body as bytes, chunk by chunk, as a caller would. */
export async function readAll(res: Response): Promise<Uint8Array> {
  const reader = res.body!.getReader();
  const parts: Uint8Array[] = [];
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    parts.push(r.value!);
  }
  return Buffer.concat(parts);
}

export const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Makes the test process's environment point nowhere real (no stray daemon, no real home or config). */
export function isolateEnv(): void {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'swts-home-'));
  tempDirs.push(home);
  process.env.HOME = home;
  process.env.SPENDWALL_DATA_DIR = path.join(home, 'data');
  process.env.SPENDWALL_SOCKET = path.join(home, 'no-daemon.sock');
  process.env.SPENDWALL_CONFIG_DIR = path.join(home, 'config'); // no spendwall.toml there
  delete process.env.SPENDWALL_STRICT;
  delete process.env.XDG_RUNTIME_DIR;
  delete process.env.XDG_CONFIG_HOME;
}

/** Waits until `pred` holds (a condition, not a duration); throws after `timeout` ms. */
export async function waitUntil(pred: () => boolean | Promise<boolean>, what: string, timeout = 30_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Another process holding SQLite's write lock on a database (as a database browser left in a
 * transaction does) until `release()`.
 */
export class LedgerLock {
  private constructor(private readonly proc: ChildProcess) {}

  static async hold(database: string): Promise<LedgerLock> {
    const code =
      'import sqlite3, sys\n' +
      'c = sqlite3.connect(sys.argv[1], isolation_level=None)\n' +
      'c.execute("BEGIN EXCLUSIVE")\n' +
      'print("locked", flush=True)\n' +
      'sys.stdin.read()\n' +
      'c.execute("ROLLBACK")\n';
    const proc = spawn('python3', ['-c', code, database], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (d: NodeBuffer) => {
        out += d.toString();
        if (out.startsWith('locked')) resolve();
      });
      proc.on('exit', (c) => reject(new Error(`could not lock ${database} (exit ${c})`)));
    });
    return new LedgerLock(proc);
  }

  /** Ends the transaction and waits for the process to exit. */
  async release(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.end();
    await gone;
  }
}
