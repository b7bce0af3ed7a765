/**
 * Per-daemon state: the transport, the spool, the background reports and the replay. One
 * runtime per resolved (socket, data dir, timeouts) — or per injected transport.
 */
import * as path from 'node:path';
import type { Settings } from './config';
import { approvalTimeoutMs, tuning } from './daemonconfig';
import { DaemonUnavailableError, errorFromBody, type JsonObject } from './errors';
import { Spool } from './spool';
import { UnixTransport, type RequestOptions, type Transport } from './transport';

export interface ReplayCounts {
  recorded: number;
  duplicate: number;
  rejected: number;
  pending: number;
}

/**
 * How often, at most, a call the daemon answered looks at the spool file for reports to replay
 * (other processes may spool into it too); right after this process spooled a report it looks
 * at once. The Python SDK does the same. A knob for tests.
 */
export const spoolLook = { intervalMs: 1_000 };

export function warn(message: string): void {
  process.emitWarning(message, { type: 'SpendwallWarning' });
}

export class Runtime {
  readonly transport: Transport;
  readonly spool: Spool;
  /** A check's request options: it outlasts the daemon's approval wait (`approval_timeout` + 30 s). */
  readonly checkOptions: RequestOptions;
  private readonly background = new Set<Promise<unknown>>();
  private replaying: Promise<ReplayCounts> | null = null;
  /** This process spooled a report since the spool file was last looked at. */
  private spooled = false;
  /** `performance.now()` of the last look at the spool file (see `spoolLook`). */
  private lastSpoolLook = -Infinity;

  constructor(readonly settings: Settings) {
    this.transport = settings.transport ?? new UnixTransport(settings.socketPath, settings.timeout, settings.connectTimeout);
    this.spool = new Spool(path.join(settings.dataDir, 'spool'), settings.spoolMaxBytes);
    const configDir = settings.configDir;
    this.checkOptions = { extendTimeout: () => approvalTimeoutMs(configDir) + tuning.approvalMarginMs };
  }

  /** Keeps a background task (a report, a spool write, a replay) for `flush()`; never rejects. */
  track(p: Promise<unknown>): void {
    const guarded = p.catch((e) => warn(`spendwall: background task failed: ${(e as Error)?.message ?? e}`));
    this.background.add(guarded);
    guarded.then(() => this.background.delete(guarded));
  }

  /** Waits until every background report, spool write and replay started so far has finished. */
  async flush(): Promise<void> {
    while (this.background.size) await Promise.all(Array.from(this.background));
    await this.spool.drain();
  }

  spoolReport(item: JsonObject): Promise<boolean> {
    this.spooled = true;
    return this.spool.append(item).then((ok) => {
      this.spooled = true; // written now: the next answered check looks at once
      return ok;
    });
  }

  /** Replays the spool through POST /v1/reports; rejects with DaemonUnavailableError if it cannot. */
  replayNow(): Promise<ReplayCounts> {
    if (this.replaying) return this.replaying.then(() => this.replayNow());
    const run = (async () => {
      const send = async (batch: JsonObject[]) => {
        const { status, body } = await this.transport.request('POST', '/v1/reports', { reports: batch });
        if (status >= 500) throw new DaemonUnavailableError(`daemon answered ${status} to /v1/reports`, { status, body });
        if (status !== 200) throw errorFromBody(body, status);
        return Array.isArray(body.results) ? (body.results as JsonObject[]) : [];
      };
      const counts = await this.spool.replay(send, (item, error) =>
        warn(`spendwall: the daemon rejected spooled report ${String(item.id)}: ${JSON.stringify(error)}`),
      );
      return { ...counts, pending: (await this.spool.pending()).length };
    })();
    this.replaying = run;
    return run.finally(() => {
      if (this.replaying === run) this.replaying = null;
    });
  }

  /**
   * The daemon answered: if the spool holds reports, replay them in the background. The spool
   * file is looked at once per `spoolLook.intervalMs` at most, and at once after this process
   * spooled a report (a stat of the file on every call would cost each call a system call).
   */
  maybeReplay(): void {
    if (this.replaying) return;
    const now = performance.now();
    if (!this.spooled && now - this.lastSpoolLook < spoolLook.intervalMs) return;
    this.lastSpoolLook = now;
    this.spooled = false;
    if (this.spool.size() === 0) return;
    this.track(this.replayNow().catch(() => undefined)); // a failed replay is retried at a later look
  }
}

const runtimes = new Map<string, Runtime>();
const byTransport = new WeakMap<Transport, Map<string, Runtime>>();

export function runtimeFor(settings: Settings): Runtime {
  const key = `${settings.socketPath}\0${settings.dataDir}\0${settings.configDir}\0${settings.timeout}\0${settings.connectTimeout}\0${settings.spoolMaxBytes}`;
  let map = runtimes;
  if (settings.transport) {
    map = byTransport.get(settings.transport) ?? new Map();
    byTransport.set(settings.transport, map);
  }
  let rt = map.get(key);
  if (!rt) {
    rt = new Runtime(settings);
    map.set(key, rt);
    allRuntimes.add(rt);
  }
  return rt;
}

const allRuntimes = new Set<Runtime>();

/** Waits for every background report, spool write and replay of every runtime. */
export async function flushAll(): Promise<void> {
  await Promise.all(Array.from(allRuntimes, (rt) => rt.flush()));
}

/** Closes idle daemon connections and forgets the runtimes (tests). */
export function closeAll(): void {
  for (const rt of allRuntimes) rt.transport.close?.();
  allRuntimes.clear();
  runtimes.clear();
}
