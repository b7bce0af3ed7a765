/** Usage normalisation into the daemon's Usage object (docs/socket-api.md, "Usage object"). */

/** Token counts as the daemon's ledger records them. */
export interface Usage {
  /** Uncached input tokens (OpenAI `prompt_tokens - cached_tokens`; Anthropic `input_tokens`). */
  input_tokens: number;
  /** All output tokens, reasoning included. */
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  /** Informational subset of `output_tokens`. */
  reasoning_tokens: number;
  /** The part of `cache_write_tokens` written with Anthropic's 1-hour lifetime (priced higher). */
  cache_write_1h_tokens?: number;
}

export function zeroUsage(): Usage {
  return { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 };
}

type Obj = { [k: string]: unknown };

function field(o: unknown, name: string): unknown {
  return o !== null && typeof o === 'object' ? (o as Obj)[name] : undefined;
}

function int(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : 0;
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** Chat/Completions (`prompt_tokens`...), Responses (`input_tokens`...) and Embeddings usage. */
export function normalizeOpenAI(usage: unknown): Usage | undefined {
  if (usage === null || typeof usage !== 'object') return undefined;
  let prompt: number, cached: number, output: number, reasoning: number;
  if (field(usage, 'prompt_tokens') != null) {
    prompt = int(field(usage, 'prompt_tokens'));
    cached = int(field(field(usage, 'prompt_tokens_details'), 'cached_tokens'));
    output = int(field(usage, 'completion_tokens'));
    reasoning = int(field(field(usage, 'completion_tokens_details'), 'reasoning_tokens'));
  } else if (field(usage, 'input_tokens') != null || field(usage, 'output_tokens') != null) {
    prompt = int(field(usage, 'input_tokens'));
    cached = int(field(field(usage, 'input_tokens_details'), 'cached_tokens'));
    output = int(field(usage, 'output_tokens'));
    reasoning = int(field(field(usage, 'output_tokens_details'), 'reasoning_tokens'));
  } else {
    return undefined;
  }
  cached = Math.min(cached, prompt);
  return {
    input_tokens: prompt - cached,
    output_tokens: output,
    cache_read_tokens: cached,
    cache_write_tokens: 0,
    reasoning_tokens: Math.min(reasoning, output),
  };
}

/** Anthropic's `input_tokens` already excludes cache reads and writes. */
export function normalizeAnthropic(usage: unknown): Usage | undefined {
  if (usage === null || typeof usage !== 'object') return undefined;
  const writes = int(field(usage, 'cache_creation_input_tokens'));
  const result: Usage = {
    input_tokens: int(field(usage, 'input_tokens')),
    output_tokens: int(field(usage, 'output_tokens')),
    cache_read_tokens: int(field(usage, 'cache_read_input_tokens')),
    cache_write_tokens: writes,
    reasoning_tokens: 0,
  };
  // 1-hour cache writes cost more than 5-minute ones; `cache_creation` tells them apart.
  const oneHour = Math.min(int(field(field(usage, 'cache_creation'), 'ephemeral_1h_input_tokens')), writes);
  if (oneHour > 0) result.cache_write_1h_tokens = oneHour;
  return result;
}

export function normalize(provider: string, usage: unknown): Usage | undefined {
  return provider === 'anthropic' ? normalizeAnthropic(usage) : normalizeOpenAI(usage);
}

/** A rough, conservative token count (4 bytes a token, rounded up) for partial streams. */
export function estimateTokens(text: string | number | undefined): number {
  if (text === undefined) return 0;
  const bytes = typeof text === 'number' ? text : utf8Length(text);
  return Math.ceil(bytes / 4);
}

export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
