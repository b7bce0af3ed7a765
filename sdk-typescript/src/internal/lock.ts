/**
 * Cross-process exclusion on the spool, compatible with the Python SDK, which takes an
 * exclusive `flock` on `<spool>/spool.lock`. Node has no flock(2), so the lock is held by a
 * `flock -x -w 10 spool.lock cat` child process (util-linux, on every Linux): the lock is ours
 * once `cat` echoes a byte back, and released when its stdin closes (or when this process
 * dies). Only the spool path takes it — when the daemon is unreachable or the spool replays —
 * never a call that the daemon answers. Without a `flock` binary the spool still works
 * (one O_APPEND write per batch) without cross-process exclusion.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';

let flockMissing = false;
const chains = new Map<string, Promise<void>>();

interface Held {
  release(): void;
}

const NOT_HELD: Held = { release() {} };

function acquire(lockPath: string): Promise<Held> {
  fs.closeSync(fs.openSync(lockPath, 'a', 0o600));
  if (flockMissing) return Promise.resolve(NOT_HELD);
  return new Promise((resolve) => {
    let settled = false;
    const done = (held: Held) => {
      if (!settled) {
        settled = true;
        resolve(held);
      }
    };
    let child;
    try {
      child = spawn('flock', ['-x', '-w', '10', lockPath, 'cat'], { stdio: ['pipe', 'pipe', 'ignore'] });
    } catch {
      flockMissing = true;
      done(NOT_HELD);
      return;
    }
    const proc = child;
    proc.on('error', (e) => {
      if (e.code === 'ENOENT') flockMissing = true;
      done(NOT_HELD);
    });
    proc.on('exit', () => done(NOT_HELD)); // flock gave up (-w timeout): go on without the lock
    proc.stdout!.once('data', () =>
      done({
        release() {
          try {
            proc.stdin!.end();
          } catch {
            proc.kill();
          }
        },
      }),
    );
    proc.stdin!.on('error', () => {});
    proc.stdin!.write('L\n');
  });
}

/** Runs `fn` holding the lock: one holder at a time in this process, and across processes. */
export async function withFileLock<T>(lockPath: string, fn: () => T | Promise<T>): Promise<T> {
  const prev = chains.get(lockPath) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = prev.then(() => mine);
  chains.set(lockPath, tail);
  await prev;
  try {
    const held = await acquire(lockPath);
    try {
      return await fn();
    } finally {
      held.release();
    }
  } finally {
    release();
    if (chains.get(lockPath) === tail) chains.delete(lockPath);
  }
}
