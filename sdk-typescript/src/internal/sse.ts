/**
 * Server-sent events read on the side of a byte stream: event boundaries found in bytes (so a
 * hidden event can be cut out byte-exactly), each event's `data` decoded and parsed as JSON.
 */

const LF = 10;
const CR = 13;

/**
 * Index just past the blank line that ends the first event starting at or after `from`, or -1
 * when the buffer holds no complete event yet. Line ends are CRLF, LF or CR (the SSE spec).
 */
export function eventEnd(b: Uint8Array, from: number): number {
  const n = b.length;
  let i = from;
  while (i < n) {
    const c = b[i];
    if (c !== LF && c !== CR) {
      i++;
      continue;
    }
    let j = i + 1;
    if (c === CR) {
      if (j >= n) return -1;
      if (b[j] === LF) j++;
    }
    if (j >= n) return -1;
    const d = b[j];
    if (d === LF) return j + 1;
    if (d === CR) {
      if (j + 1 >= n) return -1;
      return b[j + 1] === LF ? j + 2 : j + 1;
    }
    i = j;
  }
  return -1;
}

const decoder = new TextDecoder();

/** The `data` of one event (lines joined by LF), or undefined when it has none. */
export function eventData(bytes: Uint8Array): string | undefined {
  const text = decoder.decode(bytes);
  let data: string | undefined;
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (!line.startsWith('data:')) continue;
    const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
    data = data === undefined ? value : data + '\n' + value;
  }
  return data;
}

/** The JSON object of an event's data, or undefined (no data, `[DONE]`, not JSON). */
export function eventJSON(bytes: Uint8Array): { [k: string]: unknown } | undefined {
  const data = eventData(bytes);
  if (data === undefined || data === '[DONE]') return undefined;
  try {
    const v = JSON.parse(data);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

const SUFFIXES = [new TextEncoder().encode(',"usage":null}'), new TextEncoder().encode(', "usage": null}')];

/**
 * When we asked for usage, OpenAI adds `"usage": null` as the last key of every other chunk.
 * Returns the event without it (byte-exact otherwise), or the event itself when it does not end so.
 */
export function withoutNullUsage(ev: Uint8Array): Uint8Array {
  // the data line's end: the event minus its trailing line terminators
  let end = ev.length;
  while (end > 0 && (ev[end - 1] === LF || ev[end - 1] === CR)) end--;
  for (const sfx of SUFFIXES) {
    const start = end - sfx.length;
    if (start < 0) continue;
    let match = true;
    for (let k = 0; k < sfx.length; k++) {
      if (ev[start + k] !== sfx[k]) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    const out = new Uint8Array(ev.length - sfx.length + 1);
    out.set(ev.subarray(0, start), 0);
    out[start] = 0x7d; // '}'
    out.set(ev.subarray(end), start + 1);
    return out;
  }
  return ev;
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Splits a byte stream into events. `push` hands back the complete events of the bytes seen so
 * far; an incomplete event is kept until its end arrives (or the stream ends: `end()`).
 */
export class EventSplitter {
  private tail: Uint8Array = new Uint8Array(0);
  private scanFrom = 0;

  push(chunk: Uint8Array, onEvent: (ev: Uint8Array) => void): void {
    const buf = concatBytes(this.tail, chunk);
    let start = 0;
    let from = this.scanFrom;
    for (;;) {
      const end = eventEnd(buf, from);
      if (end < 0) break;
      onEvent(buf.subarray(start, end));
      start = end;
      from = end;
    }
    this.tail = start === 0 ? buf : buf.subarray(start);
    this.scanFrom = Math.max(0, this.tail.length - 3);
  }

  /** The bytes of an unterminated last event (empty when the stream ended cleanly). */
  end(): Uint8Array {
    const t = this.tail;
    this.tail = new Uint8Array(0);
    this.scanFrom = 0;
    return t;
  }
}
