// Child processes of a benchmark: started in their own process groups, pinned to
// CPUs with taskset, and all killed when the benchmark ends — normally, on an
// error, or on Ctrl-C — so a failed run never leaves a proxy holding a port.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

export interface ManagedProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Last output of the process (stdout and stderr), for error messages. */
  output(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
  /**
   * From now on stdout is drained and dropped, not decoded or kept: a proxy's
   * access log must not put a reader's work on the load generators' core.
   */
  muteStdout(): void;
}

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  /** CPU list for taskset (`"1"`, `"0-1"`); absent = not pinned. */
  cpus?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called with each stdout chunk, e.g. to wait for a readiness line. */
  onStdout?: (chunk: string) => void;
}

const OUTPUT_TAIL_CHARS = 8192;
const running = new Set<ManagedProcess>();
const cleanups = new Set<() => void>();
let handlersInstalled = false;

/** Runs `fn` when the benchmark is interrupted (normal paths clean up in their own finally). */
export function onInterrupt(fn: () => void): () => void {
  installExitHandlers();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

function runCleanups(): void {
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      // Best effort: the process is exiting anyway.
    }
  }
  cleanups.clear();
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // 'exit' handlers must be synchronous: a last SIGKILL for anything still alive.
  process.on('exit', () => {
    for (const managed of running) killGroup(managed.pid, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n[bench] ${signal}: stopping ${running.size} child process(es)\n`);
      void stopAll().finally(() => {
        runCleanups();
        process.exit(130);
      });
    });
  }
}

export function startProcess(options: StartOptions): ManagedProcess {
  installExitHandlers();
  const command = options.cpus === undefined ? options.command : 'taskset';
  const args = options.cpus === undefined ? options.args : ['-c', options.cpus, options.command, ...options.args];
  // detached: its own process group, so stopping it also stops what it forked (nginx's worker).
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (child.pid === undefined) throw new Error(`${options.name}: could not start ${command}`);
  const pid = child.pid;
  let tail = '';
  let muted = false;
  const record = (chunk: Buffer): string => {
    const text = chunk.toString();
    tail = (tail + text).slice(-OUTPUT_TAIL_CHARS);
    return text;
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    if (muted) return;
    const text = record(chunk);
    options.onStdout?.(text);
  });
  child.stderr!.on('data', record);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.on('error', (error) => {
      tail += `\n${error.message}`;
      resolve('spawn-error');
    });
  });
  const managed: ManagedProcess = {
    name: options.name,
    pid,
    child,
    output: () => tail,
    exited,
    muteStdout() {
      muted = true;
    },
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) {
        running.delete(managed);
        return;
      }
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // The group leader is gone; anything it forked must go too.
      killGroup(pid, 'SIGKILL');
      running.delete(managed);
    },
  };
  running.add(managed);
  void exited.then(() => running.delete(managed));
  return managed;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((managed) => managed.stop()));
}

/** A port that is free right now on 127.0.0.1, below the ephemeral range (for peers that cannot report an ephemeral one). */
export { freePort } from '../../cli/up/ports.ts';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Waits until 127.0.0.1:port accepts connections; fails early if the process dies. */
export async function waitForPort(managed: ManagedProcess, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead: number | string | undefined;
  void managed.exited.then((code) => (dead = code));
  while (Date.now() < deadline) {
    if (dead !== undefined) throw new Error(`${managed.name} exited (${dead}) before listening on ${port}:\n${managed.output()}`);
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${managed.name} did not listen on ${port} within ${timeoutMs} ms:\n${managed.output()}`);
}

/** Resident set size in bytes (VmRSS), or undefined once the process is gone. */
export function residentBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface MemoryFigures {
  /** VmRSS: every resident page, including file pages shared with other processes (the node binary's code). */
  vmRss: number;
  /** RssAnon: private memory (JS heap, malloc, stacks). */
  rssAnon: number;
  /** RssFile: resident file pages, mostly the executable's code and read-only data, shared by every process running it. */
  rssFile: number;
}

/** VmRSS split into anonymous and file pages (bytes), from /proc/<pid>/status; undefined once the process is gone. */
export function memoryFigures(pid: number): MemoryFigures | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { vmRss: kb('VmRSS'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
  } catch {
    return undefined;
  }
}

/**
 * Proportional set size (bytes, /proc/<pid>/smaps_rollup): private pages plus each
 * shared page divided by the number of processes mapping it — what this process
 * adds to the host when others run the same binary.
 */
export function proportionalBytes(pid: number): number | undefined {
  try {
    const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The pids of a process's direct children (nginx master → worker). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU seconds a process has used so far (from /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name, which may itself contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * Pins this benchmark process (every thread) to `cpus`, so the load side
 * never lands on a proxy's core; false when taskset failed (figures noisier).
 */
export function pinSelf(cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
