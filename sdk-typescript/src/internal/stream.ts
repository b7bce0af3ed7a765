/**
 * A streamed (SSE) answer handed to the caller chunk by chunk as it arrives — the same bytes,
 * read only when the caller reads (no read-ahead) — while the events are parsed on the side for
 * usage. The call is reported once: `ok` at the provider's own end of message, `partial` when
 * the stream breaks, is cancelled or is dropped, `killed` when a kill reaches it.
 */
import type { Call, Outcome } from './call';
import { KilledError } from './errors';
import { watchFor, type KillWatch } from './killwatch';
import { EventSplitter, concatBytes, eventJSON, withoutNullUsage } from './sse';
import { estimateTokens, normalizeAnthropic, normalizeOpenAI, utf8Length, type Usage } from './usage';

type Obj = { [k: string]: unknown };

function get(o: unknown, k: string): unknown {
  return o !== null && typeof o === 'object' ? (o as Obj)[k] : undefined;
}

/** What a stream has shown so far: usage, how much text, whether it completed. */
export class StreamTracker {
  usage: Usage | undefined;
  textBytes = 0;
  /** Saw the provider's own end-of-message event. */
  terminal = false;
  /** Set by a kill in flight; the stream stops at its next chunk. */
  killedBy: KilledError | undefined;

  constructor(readonly call: Call, readonly endpoint: string, readonly hideUsageChunk: boolean, readonly status: number) {}

  private text(s: unknown): void {
    if (typeof s === 'string' && s) this.textBytes += utf8Length(s);
  }

  /** Records one event; returns true when the event must be hidden from the caller. */
  observe(ev: Obj): boolean {
    if (this.call.provider === 'anthropic') {
      this.observeAnthropic(ev);
      return false;
    }
    if (this.endpoint === '/responses') {
      const type = typeof ev.type === 'string' ? ev.type : '';
      if (type.endsWith('.delta')) this.text(ev.delta);
      if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
        this.usage = normalizeOpenAI(get(ev.response, 'usage')) ?? this.usage;
        this.terminal = true;
      }
      return false;
    }
    // chat completions and legacy completions chunks
    const choices = Array.isArray(ev.choices) ? ev.choices : [];
    for (const c of choices) {
      const delta = get(c, 'delta');
      if (delta !== undefined && delta !== null) {
        this.text(get(delta, 'content'));
        this.text(get(delta, 'refusal'));
        const calls = get(delta, 'tool_calls');
        if (Array.isArray(calls)) {
          for (const tc of calls) {
            this.text(get(get(tc, 'function'), 'arguments'));
            this.text(get(get(tc, 'function'), 'name'));
          }
        }
      } else {
        this.text(get(c, 'text'));
      }
    }
    if (ev.usage !== undefined && ev.usage !== null) {
      this.usage = normalizeOpenAI(ev.usage) ?? this.usage;
      if (!choices.length) {
        this.terminal = true;
        return this.hideUsageChunk;
      }
    }
    return false;
  }

  private observeAnthropic(ev: Obj): void {
    switch (ev.type) {
      case 'message_start':
        this.usage = normalizeAnthropic(get(ev.message, 'usage'));
        break;
      case 'message_delta': {
        const u = ev.usage;
        if (u !== null && typeof u === 'object') {
          // message_delta usage is cumulative; newer API versions repeat the input counts
          const cur: Usage = { ...(this.usage ?? normalizeAnthropic({})!) };
          const pairs: [string, keyof Usage][] = [
            ['output_tokens', 'output_tokens'],
            ['input_tokens', 'input_tokens'],
            ['cache_read_input_tokens', 'cache_read_tokens'],
            ['cache_creation_input_tokens', 'cache_write_tokens'],
          ];
          for (const [src, dst] of pairs) {
            const v = get(u, src);
            if (typeof v === 'number' && v >= 0) cur[dst] = Math.floor(v);
          }
          this.usage = cur;
        }
        break;
      }
      case 'content_block_delta': {
        const d = ev.delta;
        this.text(get(d, 'text'));
        this.text(get(d, 'partial_json'));
        this.text(get(d, 'thinking'));
        break;
      }
      case 'message_stop':
        this.terminal = true;
        break;
    }
  }

  /** Usage known so far plus an estimate for the text already received. */
  partialUsage(): Usage {
    const out = estimateTokens(this.textBytes);
    if (!this.usage) {
      return { input_tokens: this.call.estimatedInput(), output_tokens: out, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 };
    }
    return { ...this.usage, output_tokens: Math.max(this.usage.output_tokens, out) };
  }

  finish(): void {
    if (this.terminal && this.usage) this.call.reportSoon(this.usage, this.status, 'ok');
    else this.call.reportSoon(this.partialUsage(), this.status, 'partial');
  }

  abandon(outcome: Outcome = 'partial'): void {
    if (!this.call.reported) this.call.reportSoon(this.partialUsage(), this.status, outcome);
  }
}

// ------------------------------------------------------------------------------------ kill hook

const inFlight = new Set<StreamTracker>();

/**
 * Stops every stream in flight that `matches` at its next chunk: the caller's read rejects with
 * a `KilledError` and the call is reported as `killed`. The daemon's event stream drives the
 * same flag through `KillWatch` (killwatch.ts); this is the manual form of it.
 */
export function killInFlight(matches: (call: Call) => boolean, message: string, body: Obj = {}): number {
  let n = 0;
  for (const t of inFlight) {
    if (!t.killedBy && matches(t.call)) {
      t.killedBy = new KilledError(message, { body });
      n++;
    }
  }
  return n;
}

export function streamsInFlight(): number {
  return inFlight.size;
}

// ------------------------------------------------------------------------------------ the pump

type Reader = { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> };

/** A reader over a web ReadableStream or a Node stream (node-fetch bodies). */
function readerOf(body: unknown): Reader {
  const b = body as { getReader?: () => Reader; [Symbol.asyncIterator]?: () => AsyncIterator<Uint8Array> };
  if (typeof b.getReader === 'function') return b.getReader();
  const it = b[Symbol.asyncIterator]!();
  return {
    async read() {
      const r = await it.next();
      return r.done ? { done: true } : { done: false, value: r.value };
    },
    async cancel() {
      await it.return?.();
      (body as { destroy?: () => void }).destroy?.();
    },
  };
}

interface Held {
  tracker: StreamTracker;
  reader: Reader;
}

const dropped = new FinalizationRegistry<Held>((held) => {
  inFlight.delete(held.tracker);
  watchFor(held.tracker.call.rt.transport)?.unregister(held.tracker);
  held.tracker.abandon();
  held.reader.cancel().catch(() => undefined);
});

/** The caller's body: the upstream bytes as they come, usage read on the side. */
export function trackedBody(upstreamBody: unknown, tracker: StreamTracker): ReadableStream<Uint8Array> {
  const reader = readerOf(upstreamBody);
  const splitter = new EventSplitter();
  const hide = tracker.hideUsageChunk;
  let finished = false;
  inFlight.add(tracker);
  const watch: KillWatch | undefined = watchFor(tracker.call.rt.transport);
  const done = () => {
    finished = true;
    inFlight.delete(tracker);
    watch?.unregister(tracker);
    dropped.unregister(token);
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          let r;
          try {
            r = await reader.read();
          } catch (e) {
            // a broken stream (or the caller's abort): the caller gets the very same error
            done();
            tracker.abandon('partial');
            controller.error(e);
            return;
          }
          if (tracker.killedBy && !r.done) {
            // (a stream that ended meanwhile was delivered whole: it finishes normally below)
            // what arrived was billed: counted (not handed over) before the call is reported
            if (r.value) {
              splitter.push(r.value, (ev) => {
                const json = eventJSON(ev);
                if (json) tracker.observe(json);
              });
            }
            done();
            tracker.abandon('killed');
            reader.cancel(tracker.killedBy).catch(() => undefined);
            controller.error(tracker.killedBy);
            return;
          }
          if (r.done) {
            const last = splitter.end();
            if (last.length) {
              const ev = eventJSON(last);
              const hidden = ev ? tracker.observe(ev) : false;
              if (hide && !hidden) controller.enqueue(withoutNullUsage(last));
            }
            done();
            tracker.finish();
            controller.close();
            return;
          }
          const chunk = r.value!;
          if (!hide) {
            controller.enqueue(chunk);
            splitter.push(chunk, (ev) => {
              const json = eventJSON(ev);
              if (json) tracker.observe(json);
            });
            return;
          }
          // hiding the usage chunk we asked for: forward whole events only, minus that one
          let out: Uint8Array = new Uint8Array(0);
          splitter.push(chunk, (ev) => {
            const json = eventJSON(ev);
            if (json && tracker.observe(json)) return;
            out = concatBytes(out, withoutNullUsage(ev));
          });
          if (out.length) {
            controller.enqueue(out);
            return;
          }
          // nothing to hand over yet (an incomplete event): read on
        }
      },
      cancel(reason) {
        // the caller cancelled (or broke out of its loop): partial, and upstream is let go
        if (!finished) {
          done();
          tracker.abandon('partial');
        }
        return reader.cancel(reason).catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
  const token = {};
  dropped.register(stream, { tracker, reader }, token);
  watch?.register(tracker); // last: a switch already on may mark the tracker at once
  return stream;
}
