// Minimal declarations of node:test and node:assert for the compiled tests (no @types/node).
declare module 'node:test' {
  type Fn = (t: TestContext) => unknown | Promise<unknown>;
  interface TestContext {
    name: string;
    diagnostic(message: string): void;
    skip(message?: string): void;
  }
  interface Options {
    timeout?: number;
    skip?: boolean | string;
    concurrency?: number | boolean;
  }
  function test(name: string, fn: Fn): Promise<void>;
  function test(name: string, options: Options, fn: Fn): Promise<void>;
  function describe(name: string, fn: () => void): void;
  function before(fn: () => unknown | Promise<unknown>, options?: { timeout?: number }): void;
  function after(fn: () => unknown | Promise<unknown>, options?: { timeout?: number }): void;
  function beforeEach(fn: () => unknown | Promise<unknown>, options?: { timeout?: number }): void;
  function afterEach(fn: () => unknown | Promise<unknown>, options?: { timeout?: number }): void;
  export { test, describe, before, after, beforeEach, afterEach };
  export default test;
}

declare module 'node:assert/strict' {
  interface Assert {
    (value: unknown, message?: string): asserts value;
    ok(value: unknown, message?: string): asserts value;
    equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
    notEqual(actual: unknown, expected: unknown, message?: string): void;
    deepEqual<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
    notDeepEqual(actual: unknown, expected: unknown, message?: string): void;
    match(value: string, re: RegExp, message?: string): void;
    throws(fn: () => unknown, expected?: unknown, message?: string): void;
    rejects(p: Promise<unknown> | (() => Promise<unknown>), expected?: unknown, message?: string): Promise<void>;
    fail(message?: string): never;
  }
  const assert: Assert;
  export = assert;
}
