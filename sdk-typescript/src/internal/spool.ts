/**
 * The fail-open spool: reports that could not reach the daemon, one JSON object per line in
 * `<dataDir>/spool/reports.jsonl` (directory 0700, file 0600), appended and fsync'd, size-capped,
 * replayed through `POST /v1/reports`. Same file, format and lock as the Python SDK.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withFileLock } from './lock';
import type { JsonObject } from './errors';

export const SPOOL_FILE = 'reports.jsonl';
export const LOCK_FILE = 'spool.lock';
export const BATCH = 1000;

export type ReplayResult = { id?: unknown; result?: unknown; error?: unknown };
export type Send = (batch: JsonObject[]) => Promise<ReplayResult[]>;

export class Spool {
  readonly path: string;
  readonly lockPath: string;
  dropped = 0;
  private warned = false;
  private writeWarned = false;
  private queue: { line: string; done: (ok: boolean) => void }[] = [];
  private flushing: Promise<void> | null = null;

  constructor(readonly directory: string, readonly maxBytes: number) {
    this.path = path.join(directory, SPOOL_FILE);
    this.lockPath = path.join(directory, LOCK_FILE);
  }

  private ensureDir(): void {
    fs.mkdirSync(this.directory, { recursive: true, mode: 0o700 });
  }

  /** Appends one report durably; resolves false (and warns once) when the cap is reached. */
  append(report: JsonObject): Promise<boolean> {
    const line = JSON.stringify(report) + '\n';
    return new Promise((resolve) => {
      this.queue.push({ line, done: resolve });
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing) return; // the running flush takes what is queued (or kicks again when it ends)
    this.flushing = this.flush().finally(() => {
      this.flushing = null;
      if (this.queue.length) this.kick();
    });
  }

  /** Writes everything queued, in batches, each under the lock with one write and one fsync. */
  private async flush(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      let results: boolean[] = batch.map(() => false);
      try {
        this.ensureDir();
        results = await withFileLock(this.lockPath, () => this.writeBatch(batch.map((b) => b.line)));
      } catch (e) {
        // the call itself went through; its report is lost: say so once, loudly
        if (!this.writeWarned) {
          this.writeWarned = true;
          process.emitWarning(`spendwall: could not write the spool ${this.path}, reports are lost: ${(e as Error).message}`, {
            type: 'SpendwallWarning',
            code: 'SPENDWALL_SPOOL_UNWRITABLE',
          });
        }
      }
      batch.forEach((b, i) => b.done(results[i]));
    }
  }

  private writeBatch(lines: string[]): boolean[] {
    const fd = fs.openSync(this.path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
    try {
      let size = fs.fstatSync(fd).size;
      const out: string[] = [];
      const ok = lines.map((line) => {
        const n = Buffer.byteLength(line);
        if (size + n > this.maxBytes) {
          this.dropped++;
          this.warn(
            `spendwall: spool ${this.path} reached its cap of ${this.maxBytes} bytes; reports are being dropped ` +
              `until the daemon is back and the spool is replayed`,
          );
          return false;
        }
        size += n;
        out.push(line);
        return true;
      });
      if (out.length) {
        fs.writeSync(fd, out.join(''));
        fs.fsyncSync(fd);
      }
      return ok;
    } finally {
      fs.closeSync(fd);
    }
  }

  private warn(message: string): void {
    if (this.warned) return;
    this.warned = true;
    process.emitWarning(message, { type: 'SpoolFull', code: 'SPENDWALL_SPOOL_FULL' });
  }

  /** Waits for queued appends. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  size(): number {
    const st = fs.statSync(this.path, { throwIfNoEntry: false });
    return st ? st.size : 0;
  }

  async pending(): Promise<JsonObject[]> {
    if (!fs.existsSync(this.directory)) return [];
    return withFileLock(this.lockPath, () => this.read());
  }

  private read(): JsonObject[] {
    let data: string;
    try {
      data = fs.readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    const items: JsonObject[] = [];
    for (const raw of data.split('\n')) {
      if (!raw.trim()) continue;
      try {
        const item = JSON.parse(raw);
        if (item !== null && typeof item === 'object' && !Array.isArray(item)) items.push(item);
      } catch {
        // a torn line (a crash mid-write): skipped
      }
    }
    return items;
  }

  private rewrite(items: JsonObject[]): void {
    if (!items.length) {
      try {
        fs.unlinkSync(this.path);
      } catch {
        // already gone
      }
      return;
    }
    const tmp = this.path + '.tmp';
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
    try {
      fs.writeSync(fd, items.map((i) => JSON.stringify(i) + '\n').join(''));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.path);
  }

  /**
   * Sends the spool in batches; drops items the daemon recorded, already had, or rejected.
   * `send` rejects when the daemon is unreachable: what was not acknowledged stays spooled.
   */
  async replay(send: Send, onRejected?: (item: JsonObject, error: unknown) => void): Promise<{ recorded: number; duplicate: number; rejected: number }> {
    const counts = { recorded: 0, duplicate: 0, rejected: 0 };
    if (this.size() === 0) return counts;
    await this.drain();
    await withFileLock(this.lockPath, async () => {
      const items = this.read();
      let remaining = items.slice();
      try {
        while (remaining.length) {
          const batch = remaining.slice(0, BATCH);
          const results = await send(batch);
          const byId = new Map<unknown, ReplayResult>();
          for (const r of results) byId.set(r.id, r);
          const keep: JsonObject[] = [];
          for (const item of batch) {
            const r = byId.get(item.id);
            const result = r?.result;
            if (result === 'recorded' || result === 'duplicate' || result === 'rejected') {
              counts[result]++;
              if (result === 'rejected' && onRejected) onRejected(item, r?.error);
            } else {
              keep.push(item);
            }
          }
          remaining = keep.concat(remaining.slice(BATCH));
          if (keep.length) break; // answered without a result for these: try again later
        }
      } finally {
        if (remaining.length !== items.length) {
          this.rewrite(remaining);
          this.warned = false;
        }
      }
    });
    return counts;
  }
}
