// The few Node.js APIs this package uses, declared here because @types/node is not a
// dependency (zero dependencies, offline builds). Only what the SDK calls is declared; none of
// these types appear in the public declarations, so consumers need no @types/node either.

interface NodeBuffer extends Uint8Array {
  toString(encoding?: string, start?: number, end?: number): string;
  indexOf(value: string | number | Uint8Array, byteOffset?: number): number;
  subarray(start?: number, end?: number): NodeBuffer;
}

declare var Buffer: {
  from(data: string, encoding?: string): NodeBuffer;
  from(data: Uint8Array | ArrayBuffer): NodeBuffer;
  concat(list: readonly Uint8Array[], totalLength?: number): NodeBuffer;
  byteLength(s: string, encoding?: string): number;
  alloc(size: number): NodeBuffer;
  isBuffer(x: unknown): x is NodeBuffer;
};

interface NodeErrnoError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

declare var process: {
  env: Record<string, string | undefined>;
  pid: number;
  platform: string;
  version: string;
  versions: Record<string, string>;
  argv: string[];
  execPath: string;
  execArgv: string[];
  exitCode: number | undefined;
  getuid?: () => number;
  hrtime: { bigint(): bigint };
  cwd(): string;
  exit(code?: number): never;
  on(event: string, listener: (...args: any[]) => void): void;
  once(event: string, listener: (...args: any[]) => void): void;
  off(event: string, listener: (...args: any[]) => void): void;
  removeListener(event: string, listener: (...args: any[]) => void): void;
  emitWarning(message: string, options?: { type?: string; code?: string; detail?: string }): void;
  nextTick(fn: (...args: any[]) => void, ...args: any[]): void;
  stdout: { write(s: string): boolean };
  stderr: { write(s: string): boolean };
  kill(pid: number, signal?: string | number): boolean;
};

declare function setImmediate(fn: () => void): unknown;
declare function require(id: string): any;
declare namespace require {
  function resolve(id: string, options?: { paths?: string[] }): string;
}
declare var __dirname: string;
declare var __filename: string;

declare module 'node:net' {
  interface Socket {
    readonly destroyed: boolean;
    write(data: string | Uint8Array, cb?: (err?: Error) => void): boolean;
    end(data?: string | Uint8Array): void;
    destroy(err?: Error): void;
    ref(): this;
    unref(): this;
    setNoDelay(noDelay?: boolean): this;
    on(event: 'data', listener: (chunk: NodeBuffer) => void): this;
    on(event: 'error', listener: (err: NodeErrnoError) => void): this;
    on(event: 'close' | 'end' | 'connect', listener: () => void): this;
    once(event: 'data', listener: (chunk: NodeBuffer) => void): this;
    once(event: 'error', listener: (err: NodeErrnoError) => void): this;
    once(event: 'close' | 'end' | 'connect', listener: () => void): this;
    removeListener(event: string, listener: (...args: any[]) => void): this;
    removeAllListeners(event?: string): this;
  }
  function createConnection(options: { path: string }): Socket;
  function createConnection(options: { port: number; host?: string }): Socket;
  interface Server {
    listen(path: string, cb?: () => void): this;
    listen(port: number, host: string, cb?: () => void): this;
    close(cb?: () => void): this;
    address(): { port: number } | string | null;
    on(event: string, listener: (...args: any[]) => void): this;
  }
  function createServer(listener?: (socket: Socket) => void): Server;
}

declare module 'node:fs' {
  interface Stats {
    size: number;
    mode: number;
    ino: number;
    mtimeMs: number;
    isFile(): boolean;
  }
  function openSync(path: string, flags: string | number, mode?: number): number;
  function writeSync(fd: number, data: Uint8Array | string): number;
  function fsyncSync(fd: number): void;
  function closeSync(fd: number): void;
  function fstatSync(fd: number): Stats;
  function statSync(path: string, options: { throwIfNoEntry: false }): Stats | undefined;
  function statSync(path: string): Stats;
  function mkdirSync(path: string, options?: { recursive?: boolean; mode?: number }): string | undefined;
  function readFileSync(path: string): NodeBuffer;
  function readFileSync(path: string, encoding: string): string;
  function writeFileSync(path: string, data: string | Uint8Array, options?: { mode?: number } | string): void;
  function appendFileSync(path: string, data: string | Uint8Array): void;
  function renameSync(from: string, to: string): void;
  function unlinkSync(path: string): void;
  function rmSync(path: string, options?: { recursive?: boolean; force?: boolean }): void;
  function existsSync(path: string): boolean;
  function mkdtempSync(prefix: string): string;
  function copyFileSync(from: string, to: string): void;
  function readdirSync(path: string): string[];
  function chmodSync(path: string, mode: number): void;
  const constants: { O_WRONLY: number; O_APPEND: number; O_CREAT: number; O_RDWR: number; O_TRUNC: number };
}

declare module 'node:path' {
  function join(...parts: string[]): string;
  function dirname(p: string): string;
  function resolve(...parts: string[]): string;
  function basename(p: string): string;
}

declare module 'node:os' {
  function homedir(): string;
  function tmpdir(): string;
}

declare module 'node:crypto' {
  function randomUUID(): string;
  function createHash(alg: string): { update(data: string | Uint8Array): { digest(enc: 'hex'): string } };
}

declare module 'node:async_hooks' {
  class AsyncLocalStorage<T> {
    getStore(): T | undefined;
    run<R>(store: T, callback: () => R): R;
  }
}

declare module 'node:child_process' {
  interface Readable {
    on(event: 'data', listener: (chunk: NodeBuffer) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
    once(event: string, listener: (...args: any[]) => void): this;
    setEncoding(enc: string): this;
  }
  interface Writable {
    write(data: string | Uint8Array): boolean;
    end(): void;
    on(event: string, listener: (...args: any[]) => void): this;
  }
  interface ChildProcess {
    readonly pid?: number;
    readonly exitCode: number | null;
    readonly signalCode: string | null;
    stdin: Writable | null;
    stdout: Readable | null;
    stderr: Readable | null;
    kill(signal?: string | number): boolean;
    unref(): void;
    ref(): void;
    on(event: 'exit', listener: (code: number | null, signal: string | null) => void): this;
    on(event: 'error', listener: (err: NodeErrnoError) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
    once(event: 'exit', listener: (code: number | null, signal: string | null) => void): this;
    once(event: 'error', listener: (err: NodeErrnoError) => void): this;
    once(event: string, listener: (...args: any[]) => void): this;
  }
  interface SpawnOptions {
    env?: Record<string, string | undefined>;
    cwd?: string;
    stdio?: any;
    detached?: boolean;
  }
  function spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  function spawnSync(
    command: string,
    args: readonly string[],
    options?: SpawnOptions & { encoding?: string; timeout?: number; input?: string },
  ): { status: number | null; stdout: any; stderr: any; error?: Error };
  function execFileSync(command: string, args: readonly string[], options?: SpawnOptions & { encoding?: string }): any;
}

declare module 'node:v8' {
  function setFlagsFromString(flags: string): void;
}

declare module 'node:vm' {
  function runInNewContext(code: string): any;
}

declare module 'node:http' {
  interface IncomingMessage {
    statusCode?: number;
    headers: Record<string, string | string[] | undefined>;
    resume(): this;
    destroy(err?: Error): this;
    on(event: 'data', listener: (chunk: NodeBuffer) => void): this;
    on(event: 'end' | 'close', listener: () => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
  }
  interface ClientRequest {
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: 'socket', listener: (socket: import('node:net').Socket) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
    setTimeout(ms: number, cb?: () => void): this;
    destroy(err?: Error): this;
    end(data?: string | Uint8Array): void;
  }
  interface RequestOptions {
    host?: string;
    port?: number;
    /** A Unix domain socket to connect to (instead of host and port). */
    socketPath?: string;
    path: string;
    method?: string;
    headers?: Record<string, string>;
    /** false: a fresh connection, outside any pool. */
    agent?: false;
  }
  function request(options: RequestOptions, cb: (res: IncomingMessage) => void): ClientRequest;
}
