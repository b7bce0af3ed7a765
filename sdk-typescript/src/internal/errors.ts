/**
 * The error hierarchy, keyed on the daemon's stable error codes (docs/socket-api.md, "Errors").
 * Every error the SDK throws is a `SpendwallError`; provider errors are never wrapped.
 */

/** A JSON object as the daemon sends it. */
export type JsonObject = { [key: string]: unknown };

/** Base class of every error the SDK throws. `code` is the daemon's error code. */
export class SpendwallError extends Error {
  /** The daemon's error code (`cap_exceeded`, `killed`, `approval_denied`, `unavailable`, `bad_request`, ...). */
  readonly code: string;
  /** The HTTP status of the daemon's answer, when there was one. */
  readonly status: number | undefined;
  /** The daemon's whole answer (`{}` when there was none). */
  readonly body: JsonObject;

  constructor(message: string, options: { code?: string; status?: number; body?: JsonObject; cause?: unknown } = {}) {
    super(message);
    this.name = new.target.name;
    this.code = options.code ?? (new.target as unknown as { defaultCode?: string }).defaultCode ?? 'spendwall_error';
    this.status = options.status;
    this.body = options.body ?? {};
    if (options.cause !== undefined) {
      Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false, writable: true, configurable: true });
    }
  }
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function obj(v: unknown): JsonObject | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

/** A `block` cap would be exceeded by this call (daemon code `cap_exceeded`). Nothing was sent upstream. */
export class BudgetExceededError extends SpendwallError {
  static readonly defaultCode = 'cap_exceeded';
  /** The cap as the daemon described it (name, window, key, limit, spent, reserved, ...). */
  readonly cap: JsonObject;
  readonly capName: string | undefined;
  readonly window: string | undefined;
  readonly limitNanousd: number | undefined;
  readonly spentNanousd: number | undefined;
  readonly reservedNanousd: number | undefined;
  readonly remainingNanousd: number | undefined;

  constructor(message: string, options: { code?: string; status?: number; body?: JsonObject; cause?: unknown } = {}) {
    super(message, options);
    const body = this.body;
    const cap = obj(body.cap) ?? obj(obj(body.error)?.cap) ?? {};
    this.cap = cap;
    this.capName = typeof cap.name === 'string' ? cap.name : undefined;
    this.window = typeof cap.window === 'string' ? cap.window : undefined;
    this.limitNanousd = num(cap.limit_nanousd);
    this.spentNanousd = num(cap.spent_nanousd);
    this.reservedNanousd = num(cap.reserved_nanousd);
    this.remainingNanousd = num(body.remaining_nanousd) ?? num(cap.remaining_nanousd);
  }

  /** The cap's limit in USD (for display; money is exact only in nano-USD). */
  get limitUsd(): number | undefined {
    return this.limitNanousd === undefined ? undefined : this.limitNanousd / 1e9;
  }

  /** What the cap's window has spent, in USD (for display). */
  get spentUsd(): number | undefined {
    return this.spentNanousd === undefined ? undefined : this.spentNanousd / 1e9;
  }
}

/**
 * A kill switch covers this call (daemon code `killed`): refused at its check, or — for a stream
 * — turned on while the stream was in flight (`inFlight` is then true and `scope` says which
 * switch).
 */
export class KilledError extends SpendwallError {
  static readonly defaultCode = 'killed';

  /** The switch that stopped a stream in flight: `{ kind: 'global' | 'agent' | 'app' | 'session', value? }`. */
  get scope(): { kind: string; value?: string } | undefined {
    const s = obj(this.body.scope);
    return s && typeof s.kind === 'string' ? (s as { kind: string; value?: string }) : undefined;
  }

  /** True when the call was stopped mid-stream (it was sent upstream and partly billed). */
  get inFlight(): boolean {
    return this.body.in_flight === true;
  }
}

/** The call needed an approval that was denied or timed out (daemon code `approval_denied`). */
export class ApprovalDeniedError extends SpendwallError {
  static readonly defaultCode = 'approval_denied';
}

/**
 * Why a `DaemonUnavailableError` was thrown:
 * - `unreachable`: nothing reached the daemon (no socket, connection refused, a connect timeout,
 *   the connection lost before the request was written). The only case, with `server_error`,
 *   where the default fail-open mode lets the call go through.
 * - `server_error`: the daemon answered 5xx without saying the call must fail closed.
 * - `fail_closed`: the daemon refused the call (HTTP 503, `"fail_closed": true`: its ledger cannot
 *   record spend and the call must fail closed). Thrown in every mode.
 * - `timeout`: the request was sent and no answer came in time (for a check: past the daemon's
 *   own approval timeout). Thrown in every mode: the daemon may be holding the call for approval.
 * - `connection_lost`: the daemon closed the connection after the request was sent, before
 *   answering. Thrown in every mode.
 */
export type UnavailableReason = 'unreachable' | 'server_error' | 'fail_closed' | 'timeout' | 'connection_lost';

/**
 * The daemon could not be reached or could not decide (daemon code `unavailable`). Before a
 * call, it is thrown — before anything is sent upstream — in strict mode, and in every mode when
 * the daemon refused the call as fail-closed or took the check but never answered it (`reason`);
 * otherwise, in the default fail-open mode, the call goes through and its report is spooled.
 */
export class DaemonUnavailableError extends SpendwallError {
  static readonly defaultCode = 'unavailable';
  /** Why (see `UnavailableReason`); `unreachable` when the thrower did not say. */
  readonly reason: UnavailableReason;

  constructor(message: string, options: { code?: string; status?: number; body?: JsonObject; cause?: unknown; reason?: UnavailableReason } = {}) {
    super(message, options);
    this.reason = options.reason ?? (obj(this.body.error)?.fail_closed === true ? 'fail_closed' : 'unreachable');
  }
}

type ErrorClass = new (message: string, options?: { code?: string; status?: number; body?: JsonObject }) => SpendwallError;

const BY_CODE: Record<string, ErrorClass> = {
  cap_exceeded: BudgetExceededError,
  killed: KilledError,
  approval_denied: ApprovalDeniedError,
  unavailable: DaemonUnavailableError,
};

/** Builds the error for a daemon answer carrying `{"error": {"code", "message"}}` (or a non-allow decision). */
export function errorFromBody(body: JsonObject, status?: number): SpendwallError {
  const err = obj(body.error) ?? {};
  const code = String(err.code ?? body.decision ?? 'internal');
  const message = String(err.message ?? body.reason ?? code);
  const cls = Object.prototype.hasOwnProperty.call(BY_CODE, code) ? BY_CODE[code] : SpendwallError;
  return new cls(message, { code, status, body });
}
