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
 * The daemon could not be reached (daemon code `unavailable`). Thrown only in strict mode,
 * before anything is sent upstream; in the default fail-open mode the call goes through.
 */
export class DaemonUnavailableError extends SpendwallError {
  static readonly defaultCode = 'unavailable';
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
