/**
 * HTTP/1.1 + JSON to the daemon over its Unix socket: a small pool of persistent connections,
 * each request written in one go and its answer parsed from a buffer (a lean client: the
 * daemon always answers with Content-Length; chunked answers are handled too).
 */
import * as net from 'node:net';
import { DaemonUnavailableError, type JsonObject } from './errors';

/** A daemon answer: the HTTP status and the decoded JSON body (`{}` when empty). */
export interface TransportResponse {
  status: number;
  body: JsonObject;
}

/** Per-request options a transport may honour. */
export interface RequestOptions {
  /**
   * Called when the transport's own timeout has passed without an answer: the total number of
   * milliseconds (from the request's start) to keep waiting. A check passes it so that the
   * request outlasts the daemon's approval wait (`approval_timeout` + a margin).
   */
  extendTimeout?: () => number;
}

/**
 * What the SDK needs from a transport; inject your own (option `transport`) for tests or other
 * runtimes. `request` must reject with a `DaemonUnavailableError` when the daemon cannot be
 * reached (its `reason` says how: `unreachable` when nothing was delivered — the only failure
 * a call fails open on —, `timeout` or `connection_lost` once the request was sent), and
 * resolve with the daemon's status and JSON body otherwise.
 */
export interface Transport {
  request(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<TransportResponse>;
  /** Optional fast path: the body is already JSON text. */
  requestText?(method: string, path: string, json: string | undefined, options?: RequestOptions): Promise<TransportResponse>;
  close?(): void;
}

const USER_AGENT = 'spendwall-node/0.1.0';
const CRLFCRLF = Buffer.from('\r\n\r\n');

function decode(status: number, raw: NodeBuffer | undefined): TransportResponse {
  if (!raw || raw.length === 0) return { status, body: {} };
  const text = raw.toString('utf8');
  try {
    const data = JSON.parse(text);
    return { status, body: data !== null && typeof data === 'object' && !Array.isArray(data) ? data : { value: data } };
  } catch {
    return { status, body: { error: { code: 'internal', message: text.slice(0, 200) } } };
  }
}

class ConnectionLost extends Error {
  constructor(
    message: string,
    readonly beforeAnswer: boolean,
    /** The whole request had been handed to the kernel (the daemon may have read it). */
    readonly written: boolean,
  ) {
    super(message);
  }
}

/** The request's time limit passed without an answer (the connection is destroyed). */
class TimedOut extends Error {
  constructor(readonly totalMs: number) {
    super(`no answer within ${totalMs} ms`);
  }
}

interface Answer {
  status: number;
  body: NodeBuffer;
  close: boolean;
}

interface Waiter {
  resolve(r: Answer): void;
  reject(e: Error): void;
}

type Timer = { unref(): void };

/**
 * One keep-alive connection; one request at a time. A request's time limit is kept by one
 * unref'd timer per connection, armed once and moved on only when it fires (no timer per
 * request): the socket, ref'd while a request waits, keeps the process alive meanwhile.
 */
class Connection {
  used = false;
  dead = false;
  private buf: NodeBuffer | null = null;
  private waiter: Waiter | null = null;
  private gotBytes = false;
  private written = false;
  private readonly onWritten = (err?: Error | null): void => {
    if (!err) this.written = true;
  };
  // the time limit of the request waiting (see roundtrip)
  private timer: Timer | null = null;
  private startedAt = 0;
  private deadline = 0;
  private limit = 0;
  private extend: (() => number) | undefined;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => this.fail(new ConnectionLost(`${e.code ?? ''} ${e.message}`.trim(), !this.gotBytes, this.written)));
    sock.on('close', () => this.fail(new ConnectionLost('the daemon closed the connection', !this.gotBytes, this.written)));
  }

  /**
   * Sends one request and resolves with its answer. Rejects with `TimedOut` when `timeoutMs`
   * pass without an answer — unless `extendTimeout` then gives a longer total limit (from the
   * request's start), which is waited out first.
   */
  roundtrip(request: string, timeoutMs: number, extendTimeout?: () => number): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.gotBytes = false;
      this.written = false;
      this.startedAt = Date.now();
      this.deadline = this.startedAt + timeoutMs;
      this.limit = timeoutMs;
      this.extend = extendTimeout;
      if (this.timer === null) this.arm(timeoutMs);
      this.sock.ref();
      this.sock.write(request, this.onWritten);
    });
  }

  private arm(ms: number): void {
    const t = setTimeout(this.onTimer, ms) as unknown as Timer;
    t.unref();
    this.timer = t;
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (!this.waiter || this.dead) return; // answered meanwhile: nothing to time
    const now = Date.now();
    if (now < this.deadline) {
      this.arm(this.deadline - now); // armed by an earlier request: this one's limit is later
      return;
    }
    // at the time limit, a request that may wait longer (a check held for an approval) is given
    // what is left of its longer limit
    const total = this.extend ? Math.max(this.limit, this.extend()) : this.limit;
    const left = total - (now - this.startedAt);
    if (left > 0 && total > this.limit) {
      this.deadline = now + left;
      this.arm(left);
      return;
    }
    const w = this.waiter;
    this.waiter = null;
    this.destroy();
    w.reject(new TimedOut(total));
  };

  private disarm(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer as unknown as number);
      this.timer = null;
    }
  }

  private fail(err: Error): void {
    this.dead = true;
    this.disarm();
    const w = this.waiter;
    this.waiter = null;
    if (w) w.reject(err);
  }

  private onData(chunk: NodeBuffer): void {
    this.gotBytes = true;
    this.buf = this.buf && this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (!this.waiter) return; // unsolicited bytes: the next parse will fail and drop the connection
    let parsed;
    try {
      parsed = this.parse(this.buf);
    } catch (e) {
      this.sock.destroy();
      this.fail(new ConnectionLost((e as Error).message, false, true));
      return;
    }
    if (!parsed) return;
    const w = this.waiter;
    this.waiter = null;
    this.buf = parsed.rest.length ? parsed.rest : null;
    w.resolve(parsed);
  }

  /** Returns undefined until a whole answer is buffered. */
  private parse(buf: NodeBuffer): { status: number; body: NodeBuffer; close: boolean; rest: NodeBuffer } | undefined {
    const end = buf.indexOf(CRLFCRLF);
    if (end < 0) return undefined;
    const head = buf.toString('latin1', 0, end);
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(head);
    if (!m) {
      const eol = head.indexOf('\r\n');
      throw new Error(`bad status line ${JSON.stringify((eol < 0 ? head : head.slice(0, eol)).slice(0, 80))}`);
    }
    const status = Number(m[2]);
    let close = m[1] === '0';
    let length = -1;
    let chunked = false;
    // the header lines, walked in place (the status line is the first line)
    for (let eol = head.indexOf('\r\n'); eol >= 0; ) {
      const start = eol + 2;
      eol = head.indexOf('\r\n', start);
      const lineEnd = eol < 0 ? head.length : eol;
      const colon = head.indexOf(':', start);
      if (colon < 0 || colon > lineEnd) continue;
      const name = head.slice(start, colon).trim().toLowerCase();
      if (name === 'content-length') length = Number(head.slice(colon + 1, lineEnd).trim());
      else if (name === 'transfer-encoding') chunked = head.slice(colon + 1, lineEnd).trim().toLowerCase().includes('chunked');
      else if (name === 'connection') close = head.slice(colon + 1, lineEnd).trim().toLowerCase() === 'close';
    }
    const start = end + 4;
    if (chunked) {
      const parts: NodeBuffer[] = [];
      let pos = start;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', pos);
        if (lineEnd < 0) return undefined;
        const size = parseInt(buf.toString('latin1', pos, lineEnd).split(';')[0].trim() || '0', 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        if (size === 0) {
          const trailerEnd = buf.indexOf('\r\n', lineEnd + 2);
          if (trailerEnd < 0) return undefined;
          return { status, body: Buffer.concat(parts), close, rest: buf.subarray(trailerEnd + 2) };
        }
        if (buf.length < lineEnd + 2 + size + 2) return undefined;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        pos = lineEnd + 2 + size + 2;
      }
    }
    if (length < 0) {
      if (status === 204 || status === 304) return { status, body: Buffer.alloc(0), close, rest: buf.subarray(start) };
      throw new Error('answer without Content-Length');
    }
    if (buf.length < start + length) return undefined;
    return { status, body: buf.subarray(start, start + length), close, rest: buf.subarray(start + length) };
  }

  destroy(): void {
    this.dead = true;
    this.disarm();
    this.sock.destroy();
  }
}

/** The default transport: a pool of keep-alive connections to the daemon's Unix socket. */
export class UnixTransport implements Transport {
  private idle: Connection[] = [];

  constructor(
    readonly path: string,
    private readonly timeout = 30_000,
    private readonly connectTimeout = 1_000,
    private readonly maxIdle = 64,
  ) {}

  private connect(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ path: this.path });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new DaemonUnavailableError(`spendwall daemon unreachable at ${this.path}: connect timed out`, { reason: 'unreachable' }));
      }, this.connectTimeout);
      const onError = (e: NodeErrnoError) => {
        clearTimeout(timer);
        sock.destroy();
        reject(new DaemonUnavailableError(`spendwall daemon unreachable at ${this.path}: ${e.code ?? e.message}`, { cause: e, reason: 'unreachable' }));
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeListener('error', onError);
        resolve(new Connection(sock));
      });
    });
  }

  /** An idle connection still open, if there is one. */
  private borrowIdle(): Connection | undefined {
    while (this.idle.length) {
      const c = this.idle.pop()!;
      if (!c.dead && !c.sock.destroyed) return c;
    }
    return undefined;
  }

  private giveBack(c: Connection): void {
    if (c.dead || this.idle.length >= this.maxIdle) {
      c.destroy();
      return;
    }
    c.sock.unref(); // an idle connection never keeps the process alive
    this.idle.push(c);
  }

  request(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<TransportResponse> {
    return this.requestText(method, path, body === undefined ? undefined : JSON.stringify(body), options);
  }

  async requestText(method: string, path: string, json: string | undefined, options?: RequestOptions): Promise<TransportResponse> {
    const payload = json ?? '';
    const request =
      `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ${USER_AGENT}\r\n` +
      `Content-Type: application/json\r\nAccept: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`;
    for (let attempt = 0; ; attempt++) {
      const conn = this.borrowIdle() ?? (await this.connect());
      const reused = conn.used;
      try {
        const answer = await conn.roundtrip(request, this.timeout, options?.extendTimeout);
        conn.used = true;
        if (answer.close) conn.destroy();
        else this.giveBack(conn);
        return decode(answer.status, answer.body);
      } catch (e) {
        conn.destroy();
        if (e instanceof TimedOut) {
          throw new DaemonUnavailableError(`spendwall daemon at ${this.path} did not answer ${method} ${path} within ${e.totalMs} ms`, { reason: 'timeout' });
        }
        if (e instanceof ConnectionLost) {
          // an idle keep-alive connection the daemon had closed: one retry on a fresh one
          if (reused && e.beforeAnswer && attempt === 0) continue;
          throw new DaemonUnavailableError(
            e.written
              ? `spendwall daemon at ${this.path} closed the connection before answering ${method} ${path}: ${e.message}`
              : `spendwall daemon unreachable at ${this.path}: the connection failed before the request was sent: ${e.message}`,
            { cause: e, reason: e.written ? 'connection_lost' : 'unreachable' },
          );
        }
        throw e;
      }
    }
  }

  close(): void {
    const idle = this.idle;
    this.idle = [];
    for (const c of idle) c.destroy();
  }
}
