/**
 * Kill in flight: a subscriber to the daemon's live event stream that stops streams whose scope
 * is killed while they run.
 *
 * One subscription per daemon socket, opened lazily when the first stream begins:
 * `GET /v1/events?kinds=KillSwitch` (chunked `text/event-stream`, read with Node's http over the
 * Unix socket and parsed as it arrives), seeded from `GET /v1/kill` once subscribed, then
 * following `KillSwitch` events. When a switch turns on, every stream in flight that it covers
 * is marked; its pump notices before handing over the next chunk, reports the call as `killed`
 * and fails the caller's read with a `KilledError`.
 *
 * The subscription never keeps the process alive (its sockets and timers are unref'd), reconnects
 * with backoff (a daemon restart, a dropped stream) and keeps the last known switches meanwhile;
 * a daemon without the endpoint is retried slowly and calls are never affected. With no stream
 * in flight for `tuning.linger` ms it is closed; the next stream opens it again.
 */
import * as http from 'node:http';
import type { Call } from './call';
import { KilledError, type JsonObject } from './errors';
import { EventSplitter, eventJSON } from './sse';
import type { StreamTracker } from './stream';
import { UnixTransport, type Transport } from './transport';

export interface KillScope {
  kind: 'global' | 'agent' | 'app' | 'session';
  /** Absent for the global switch. */
  value?: string;
}

/** Timings in ms (tests shorten them). */
export const tuning = {
  /** Without a stream in flight this long, the subscription is closed. */
  linger: 60_000,
  /** The daemon sends a keep-alive every 15 s: this much silence means a dead stream. */
  silence: 45_000,
  backoffMin: 200,
  backoffMax: 5_000,
  /** A daemon that answers /v1/events with an error (an older daemon). */
  noEventsBackoff: 60_000,
  seedTimeout: 5_000,
};

const EVENTS_PATH = '/v1/events?kinds=KillSwitch';
const USER_AGENT = 'spendwall-node/0.1.0';

type Timer = { unref?: () => void };

function unrefTimer(fn: () => void, ms: number): Timer {
  const t = setTimeout(fn, ms) as unknown as Timer;
  t.unref?.();
  return t;
}

function clearTimer(t: Timer | undefined): void {
  if (t !== undefined) clearTimeout(t as unknown as number);
}

function obj(v: unknown): JsonObject | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

export function parseScope(v: unknown): KillScope | undefined {
  const o = obj(v);
  if (!o) return undefined;
  if (o.kind === 'global') return { kind: 'global' };
  if ((o.kind === 'agent' || o.kind === 'app' || o.kind === 'session') && typeof o.value === 'string') return { kind: o.kind, value: o.value };
  return undefined;
}

const keyOf = (s: KillScope): string => (s.kind === 'global' ? 'global' : `${s.kind}\0${s.value}`);

/**
 * Whether a switch on `scope` covers `call`. The `app` of a call is the daemon's to decide: it is
 * known only when the check answer said it.
 */
export function scopeCovers(scope: KillScope, call: Call): boolean {
  switch (scope.kind) {
    case 'global':
      return true;
    case 'agent':
      return call.agent === scope.value;
    case 'session':
      return call.session === scope.value;
    case 'app':
      return call.app !== undefined && call.app === scope.value;
  }
  return false;
}

function describe(s: KillScope): string {
  return s.kind === 'global' ? 'the global kill switch' : `the ${s.kind} '${s.value}' kill switch`;
}

interface Switch {
  scope: KillScope;
  on: boolean;
  /** time_ms of the flip that set it; 0 when unknown. */
  since: number;
  by: unknown;
}

/** GET over the Unix socket with an unref'd socket; resolves with the status and JSON body. */
function getJSON(socketPath: string, path: string, timeout: number): Promise<{ status: number; body: JsonObject }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method: 'GET', agent: false, headers: { accept: 'application/json', 'user-agent': USER_AGENT } }, (res) => {
      const parts: NodeBuffer[] = [];
      res.on('data', (d: NodeBuffer) => parts.push(d));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: obj(JSON.parse(Buffer.concat(parts).toString('utf8') || '{}')) ?? {} });
        } catch (e) {
          reject(e);
        }
      });
      res.on('error', reject);
    });
    req.on('socket', (s) => s.unref());
    req.setTimeout(timeout, () => req.destroy(new Error(`GET ${path}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The kill switches of one daemon, and the streams in flight that they may stop. */
export class KillWatch {
  private readonly streams = new Set<StreamTracker>();
  private switches = new Map<string, Switch>();
  private running = false;
  private req: http.ClientRequest | undefined;
  private reconnectTimer: Timer | undefined;
  private idleTimer: Timer | undefined;
  private silenceTimer: Timer | undefined;
  private backoff = tuning.backoffMin;
  private session = 0;
  /** Observability (tests, debugging). */
  attempts = 0;
  connects = 0;
  events = 0;
  connected = false;
  seeded = false;
  /** Why the last subscription ended. */
  lastError: string | undefined;
  private seedWaiters: (() => void)[] = [];
  private warnedNoEvents = false;

  constructor(readonly socketPath: string) {}

  /** A stream begins: watch it (opening the subscription if needed). */
  register(t: StreamTracker): void {
    this.streams.add(t);
    clearTimer(this.idleTimer);
    this.idleTimer = undefined;
    for (const sw of this.switches.values()) if (sw.on) this.mark(t, sw);
    if (!this.running) this.start();
  }

  unregister(t: StreamTracker): void {
    if (!this.streams.delete(t) || this.streams.size) return;
    clearTimer(this.idleTimer);
    this.idleTimer = unrefTimer(() => {
      this.idleTimer = undefined;
      if (!this.streams.size) this.stop();
    }, tuning.linger);
  }

  inFlight(): number {
    return this.streams.size;
  }

  /** The switches known to be on. */
  active(): KillScope[] {
    return Array.from(this.switches.values(), (s) => s).filter((s) => s.on).map((s) => s.scope);
  }

  /** Resolves once the current subscription has loaded the switches (tests). */
  whenSeeded(): Promise<void> {
    return this.seeded ? Promise.resolve() : new Promise((r) => this.seedWaiters.push(r));
  }

  /**
   * Kills `t` if the switch covers its call and was turned on after the call's check began (a
   * switch already on then would have refused the check: such a state is stale).
   */
  private mark(t: StreamTracker, sw: Switch): void {
    if (t.killedBy || sw.since < t.call.timeMs || !scopeCovers(sw.scope, t.call)) return;
    const message = `${describe(sw.scope)} was turned on while this stream was in flight`;
    const body: JsonObject = { decision: 'killed', error: { code: 'killed', message }, scope: { ...sw.scope }, in_flight: true, time_ms: sw.since };
    if (sw.by !== undefined) body.by = sw.by;
    t.killedBy = new KilledError(message, { body });
  }

  /** One KillSwitch event's data: `{"scope": {...}, "on": bool, "time_ms": T, "by": {...}}`. */
  apply(data: JsonObject): void {
    const scope = parseScope(data.scope);
    if (!scope) return;
    const since = typeof data.time_ms === 'number' ? data.time_ms : Date.now();
    const key = keyOf(scope);
    const prev = this.switches.get(key);
    if (prev && since < prev.since) return; // older than what we know (an event that preceded the seed)
    const sw: Switch = { scope, on: data.on === true, since, by: data.by };
    this.switches.set(key, sw);
    if (sw.on) for (const t of this.streams) this.mark(t, sw);
  }

  /** `GET /v1/kill`: `{"on": [scope...], "flips": [{"scope", "on", "time_ms", "by"}...]}`. */
  seed(answer: JsonObject): void {
    const latest = new Map<string, { since: number; by: unknown }>();
    for (const f of Array.isArray(answer.flips) ? answer.flips : []) {
      const flip = obj(f);
      const scope = parseScope(flip?.scope);
      if (!flip || !scope || typeof flip.time_ms !== 'number') continue;
      const k = keyOf(scope);
      const cur = latest.get(k);
      if (!cur || flip.time_ms >= cur.since) latest.set(k, { since: flip.time_ms, by: flip.by });
    }
    const switches = new Map<string, Switch>();
    for (const s of Array.isArray(answer.on) ? answer.on : []) {
      const scope = parseScope(s);
      if (!scope) continue;
      const l = latest.get(keyOf(scope));
      switches.set(keyOf(scope), { scope, on: true, since: l?.since ?? 0, by: l?.by });
    }
    for (const f of Array.isArray(answer.flips) ? answer.flips : []) {
      const scope = parseScope(obj(f)?.scope);
      if (!scope || switches.has(keyOf(scope))) continue;
      switches.set(keyOf(scope), { scope, on: false, since: latest.get(keyOf(scope))?.since ?? 0, by: undefined });
    }
    this.switches = switches;
    for (const sw of switches.values()) if (sw.on) for (const t of this.streams) this.mark(t, sw);
  }

  // ---------------------------------------------------------------------------- the subscriber

  private start(): void {
    this.running = true;
    this.backoff = tuning.backoffMin;
    this.connect();
  }

  /** Closes the subscription (no stream in flight for a while). */
  stop(): void {
    this.running = false;
    clearTimer(this.reconnectTimer);
    clearTimer(this.idleTimer);
    clearTimer(this.silenceTimer);
    this.reconnectTimer = this.idleTimer = this.silenceTimer = undefined;
    this.session++;
    this.req?.destroy();
    this.req = undefined;
    this.connected = false;
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    if (!this.running) return;
    const session = ++this.session;
    const live = () => session === this.session;
    this.attempts++;
    this.seeded = false;
    const opened = Date.now();
    let failed = false;
    const drop = (why: string, wait?: number) => {
      if (failed || !live()) return;
      failed = true;
      this.connected = false;
      clearTimer(this.silenceTimer);
      req.destroy();
      if (this.req === req) this.req = undefined;
      if (!this.running) return;
      // a stream that lived a while resets the backoff; quick failures double it
      const delay = wait ?? (Date.now() - opened > 5_000 ? tuning.backoffMin : this.backoff);
      this.backoff = Math.min(tuning.backoffMax, Math.max(tuning.backoffMin, delay) * 2);
      this.lastError = why;
      this.reconnectTimer = unrefTimer(() => this.connect(), delay * (0.8 + 0.4 * Math.random()));
    };
    const req = http.request(
      { socketPath: this.socketPath, path: EVENTS_PATH, method: 'GET', agent: false, headers: { accept: 'text/event-stream', 'user-agent': USER_AGENT } },
      (res) => {
        const type = String(res.headers['content-type'] ?? '');
        if (res.statusCode !== 200 || !type.startsWith('text/event-stream')) {
          res.resume();
          if (!this.warnedNoEvents) {
            this.warnedNoEvents = true;
            process.emitWarning(
              `spendwall: the daemon at ${this.socketPath} serves no event stream (HTTP ${res.statusCode}): kill in flight is off; checks still enforce kill switches`,
              { type: 'SpendwallWarning', code: 'SPENDWALL_NO_EVENTS' },
            );
          }
          drop(`HTTP ${res.statusCode}`, tuning.noEventsBackoff);
          return;
        }
        this.connects++;
        this.connected = true;
        const splitter = new EventSplitter();
        const armSilence = () => {
          clearTimer(this.silenceTimer);
          this.silenceTimer = unrefTimer(() => drop('silence'), tuning.silence);
        };
        armSilence();
        let seeding = false;
        res.on('data', (chunk: NodeBuffer) => {
          if (!live()) return;
          armSilence();
          if (!seeding) {
            // the greeting came: the subscription is registered, so no flip can fall between it
            // and this snapshot (events that preceded the snapshot and arrive after it are older
            // than it, and skipped)
            seeding = true;
            getJSON(this.socketPath, '/v1/kill', tuning.seedTimeout).then(
              ({ status, body }) => {
                if (!live()) return;
                if (status === 200) this.seed(body);
                this.seeded = true;
                const waiters = this.seedWaiters;
                this.seedWaiters = [];
                for (const w of waiters) w();
              },
              (e) => drop(`GET /v1/kill: ${(e as Error).message}`),
            );
          }
          splitter.push(chunk, (ev) => {
            const msg = eventJSON(ev);
            if (!msg || msg.kind !== 'KillSwitch') return;
            const data = obj(msg.data);
            if (!data) return;
            this.events++;
            this.apply(data);
          });
        });
        res.on('end', () => drop('ended'));
        res.on('close', () => drop('closed'));
        res.on('error', () => drop('error'));
      },
    );
    this.req = req;
    req.on('socket', (s) => s.unref());
    req.on('error', (e) => drop(e.message));
    req.end();
  }
}

const watches = new Map<string, KillWatch>();

/**
 * The watch of the daemon behind `transport`, when it is the SDK's own Unix socket transport (an
 * injected transport has no event stream to follow).
 */
export function watchFor(transport: Transport): KillWatch | undefined {
  if (!(transport instanceof UnixTransport)) return undefined;
  let w = watches.get(transport.path);
  if (!w) {
    w = new KillWatch(transport.path);
    watches.set(transport.path, w);
  }
  return w;
}

/** Closes every subscription (tests). */
export function stopAllWatches(): void {
  for (const w of watches.values()) w.stop();
}
