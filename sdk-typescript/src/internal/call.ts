/** The check -> forward -> report cycle of one call: its attribution, its reservation and, once, its report. */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import type { Attribution } from './config';
import { daemonPolicy } from './daemonconfig';
import { DaemonUnavailableError, errorFromBody, type JsonObject, type UnavailableReason } from './errors';
import type { Runtime } from './runtime';
import { warn } from './runtime';
import type { TransportResponse } from './transport';
import { estimateTokens, zeroUsage, type Usage } from './usage';

export type Provider = 'openai' | 'anthropic';
export type Outcome = 'ok' | 'error' | 'partial' | 'disconnected' | 'killed';

/**
 * The failures a call may fail open on: nothing reached the daemon, or it answered 5xx without
 * saying the call must fail closed. A check the daemon took but never answered (a timeout, a
 * connection closed after the request was sent) may be held for an approval, and a fail-closed
 * refusal is the daemon's decision: both are thrown in every mode.
 */
const FAIL_OPEN: ReadonlySet<UnavailableReason> = new Set<UnavailableReason>(['unreachable', 'server_error']);

/** The attribution's members of a check body, per attribution object (calls share one until a block or header adds to it). */
const attributionJSONs = new WeakMap<Attribution, string>();

/** `,"agent":...,"tags":{...},"session":...` for the members that are set (attributions are never changed once made). */
export function attributionJSON(a: Attribution): string {
  let s = attributionJSONs.get(a);
  if (s === undefined) {
    s = '';
    if (a.agent !== undefined) s += `,"agent":${JSON.stringify(a.agent)}`;
    if (a.tags && Object.keys(a.tags).length) s += `,"tags":${JSON.stringify(a.tags)}`;
    if (a.session !== undefined) s += `,"session":${JSON.stringify(a.session)}`;
    attributionJSONs.set(a, s);
  }
  return s;
}

export class Call {
  reservationId: string | undefined;
  /**
   * The app the daemon attributed this call to, when its check answer says it (the SDK cannot
   * know it otherwise: the daemon decides it from the calling process).
   */
  app: string | undefined;
  reported = false;
  readonly timeMs = Date.now();
  private readonly started = performance.now();
  readonly mode: 'default' | 'strict';

  constructor(
    readonly rt: Runtime,
    readonly provider: Provider,
    readonly model: string,
    /** The request body as sent by the caller (JSON text of an object), when it could be read. */
    readonly requestText: string | undefined,
    readonly request: JsonObject | undefined,
    readonly attribution: Attribution,
    strict: boolean,
  ) {
    this.mode = strict || attribution.mode === 'strict' ? 'strict' : 'default'; // fail closed wins
  }

  get agent(): string | undefined {
    return this.attribution.agent;
  }

  get session(): string | undefined {
    return this.attribution.session;
  }

  /** The check body as JSON text; the request body is spliced in as the caller wrote it. */
  private checkJSON(): string {
    let s = `{"provider":"${this.provider}","model":${JSON.stringify(this.model)},"mode":"${this.mode}","path":"sdk"${attributionJSON(this.attribution)}`;
    if (this.requestText !== undefined) s += `,"request":${this.requestText}`;
    return s + '}';
  }

  private checkPayload(): JsonObject {
    const a = this.attribution;
    const p: JsonObject = { provider: this.provider, model: this.model, mode: this.mode, path: 'sdk' };
    if (a.agent !== undefined) p.agent = a.agent;
    if (a.tags && Object.keys(a.tags).length) p.tags = { ...a.tags }; // the attribution may be shared by calls
    if (a.session !== undefined) p.session = a.session;
    if (this.request !== undefined) p.request = this.request;
    return p;
  }

  private onCheckAnswer({ status, body }: TransportResponse): void {
    if (status >= 500) {
      const error = body.error as JsonObject | undefined;
      const reason = error?.fail_closed === true ? 'fail_closed' : 'server_error';
      throw new DaemonUnavailableError(String(error?.message ?? `daemon answered ${status}`), { status, body, reason });
    }
    if (status !== 200 || body.decision !== 'allow') throw errorFromBody(body, status);
    this.reservationId = typeof body.reservation_id === 'string' ? body.reservation_id : undefined;
    if (typeof body.app === 'string') this.app = body.app;
  }

  /** Why this call must fail closed when the daemon cannot be reached; undefined: it fails open. */
  private failsClosed(): string | undefined {
    if (this.mode === 'strict') return 'strict mode';
    const configDir = this.rt.settings.configDir;
    if (daemonPolicy(configDir).failMode === 'closed') return `policy.fail_mode is "closed" in ${path.join(configDir, 'spendwall.toml')}`;
    return undefined;
  }

  /**
   * Asks the daemon before anything goes upstream. Throws the mapped error when the call is not
   * allowed. When the daemon cannot be reached, throws only when the call fails closed (strict
   * mode, SPENDWALL_STRICT=1 or the daemon's `fail_mode = "closed"`); a fail-closed refusal, or a
   * check the daemon took and never answered (`timeout`, `connection_lost`), always throws.
   */
  async check(): Promise<void> {
    const t = this.rt.transport;
    const options = this.rt.checkOptions;
    try {
      const answer = t.requestText
        ? await t.requestText('POST', '/v1/check', this.checkJSON(), options)
        : await t.request('POST', '/v1/check', this.checkPayload(), options);
      this.onCheckAnswer(answer);
    } catch (e) {
      if (e instanceof DaemonUnavailableError && FAIL_OPEN.has(e.reason)) {
        const why = this.failsClosed();
        if (why === undefined) return; // fail-open: the call goes through and its report is spooled
        throw new DaemonUnavailableError(`${e.message} (failing closed: ${why})`, { code: e.code, status: e.status, body: e.body, cause: e, reason: e.reason });
      }
      throw e;
    }
    this.rt.maybeReplay();
  }

  private spoolItem(usage: Usage, status: number | undefined, outcome: Outcome, durationMs: number): JsonObject {
    const a = this.attribution;
    return {
      id: this.reservationId ?? 'c_' + randomUUID().replace(/-/g, ''),
      reservation_id: this.reservationId ?? null,
      time_ms: this.timeMs,
      provider: this.provider,
      model: this.model,
      agent: a.agent ?? null,
      tags: a.tags ?? {},
      session: a.session ?? null,
      usage: usage as unknown as JsonObject,
      status: status ?? null,
      duration_ms: durationMs,
      outcome,
      mode: this.mode,
      path: 'sdk',
    };
  }

  /** An estimate of the input when the provider told nothing (4 bytes a token of the request). */
  estimatedInput(): number {
    return estimateTokens(this.requestText ?? '');
  }

  /** Reports once; later calls do nothing. Never rejects: what cannot reach the daemon is spooled. */
  async report(usage: Usage | undefined, status: number | undefined, outcome: Outcome): Promise<void> {
    if (this.reported) return;
    this.reported = true;
    const u = usage ?? zeroUsage();
    const durationMs = Math.max(0, Math.floor(performance.now() - this.started));
    if (this.reservationId === undefined) {
      await this.rt.spoolReport(this.spoolItem(u, status, outcome, durationMs));
      return;
    }
    const payload: JsonObject = { reservation_id: this.reservationId, usage: u as unknown as JsonObject, duration_ms: durationMs, outcome };
    if (status !== undefined) payload.status = status;
    let answer: TransportResponse;
    try {
      answer = await this.rt.transport.request('POST', '/v1/report', payload);
    } catch (e) {
      if (!(e instanceof DaemonUnavailableError)) warn(`spendwall: report failed: ${(e as Error).message}`);
      await this.rt.spoolReport(this.spoolItem(u, status, outcome, durationMs));
      return;
    }
    if (answer.status === 200) return;
    const code = (answer.body.error as JsonObject | undefined)?.code;
    if (answer.status >= 500 || code === 'unknown_reservation') {
      // the daemon lost the reservation (a restart) or cannot write now: the batch endpoint,
      // with the call's attribution, takes it later
      await this.rt.spoolReport(this.spoolItem(u, status, outcome, durationMs));
    } else {
      warn(`spendwall: the daemon refused a report (${answer.status} ${String(code)}): ${JSON.stringify(answer.body)}`);
    }
  }

  /** Starts the report in the background (kept for `flush()`). */
  reportSoon(usage: Usage | undefined | (() => Usage), status: number | undefined, outcome: Outcome): void {
    if (this.reported) return;
    // sent on the next turn of the event loop: the caller first gets (and usually parses) its
    // answer, and neither reading the usage nor the daemon's work on the report competes with that
    this.rt.track(
      new Promise<void>((resolve) =>
        setImmediate(() => resolve(this.report(typeof usage === 'function' ? usage() : usage, status, outcome))),
      ),
    );
  }
}
