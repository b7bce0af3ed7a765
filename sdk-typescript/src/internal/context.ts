/** Attribution carried through async calls (AsyncLocalStorage), like the Python SDK's contextvars. */
import { AsyncLocalStorage } from 'node:async_hooks';
import { cleanTags, type Attribution } from './config';

const storage = new AsyncLocalStorage<Attribution>();
const KEYS = new Set(['agent', 'tags', 'session', 'mode']);

export function currentAttribution(): Attribution | undefined {
  return storage.getStore();
}

/** `over` wins field by field; tags merge key by key; undefined fields are skipped. */
export function mergeAttribution(base: Attribution | undefined, over: Attribution | undefined, where = 'spendwall'): Attribution {
  const out: Attribution = base ? { ...base } : {};
  if (!over) return out;
  for (const key of Object.keys(over)) {
    if (!KEYS.has(key)) throw new TypeError(`${where}: unknown attribution field '${key}' (use agent, tags, session, mode)`);
  }
  if (over.agent != null) out.agent = String(over.agent);
  if (over.session != null) out.session = String(over.session);
  if (over.mode != null) {
    if (over.mode !== 'default' && over.mode !== 'strict') throw new TypeError(`${where}: mode must be 'default' or 'strict'`);
    out.mode = over.mode;
  }
  const tags = cleanTags(over.tags, where);
  if (tags && Object.keys(tags).length) out.tags = { ...(out.tags ?? {}), ...tags };
  return out;
}

/**
 * Runs `fn` with this attribution added to every call made inside it (and inside everything
 * it awaits or schedules). Nested blocks merge: inner fields win, tags merge key by key.
 */
export function withAttribution<R>(attribution: Attribution, fn: () => R): R {
  return storage.run(mergeAttribution(storage.getStore(), attribution, 'withAttribution'), fn);
}

/** `withTags({ customer: 'acme' }, () => ...)`: every call inside carries these tags. */
export function withTags<R>(tags: Record<string, string>, fn: () => R): R {
  return withAttribution({ tags }, fn);
}
