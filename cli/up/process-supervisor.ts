// Starts child processes with their output in log files, restarts one that
// dies (with backoff, a few times), and stops every one of them on the way out.
// Children get a stdin pipe and exit when it closes (JIBE_EXIT_WITH_PARENT),
// so none outlives `jibe up` even if it is killed outright.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface Child {
  name: string;
  process: ChildProcess;
  logFile: string;
  restarts: number;
  /** Resolves when the current process exits. */
  exited: Promise<number | null>;
}

const MAX_RESTARTS = 5;

export class ProcessSupervisor {
  private readonly children: Child[] = [];
  private readonly logDir: string;
  private readonly pidFile: string;
  private stopping = false;
  /** Called when a child died and will not be restarted any more. */
  onGiveUp: (child: Child, code: number | null) => void = () => {};
  onRestart: (child: Child, code: number | null) => void = () => {};

  constructor(logDir: string, pidFile: string) {
    this.logDir = logDir;
    this.pidFile = pidFile;
    fs.mkdirSync(logDir, { recursive: true, mode: 0o700 });
  }

  start(name: string, args: string[], env: Record<string, string> = {}): Child {
    const child: Child = { name, logFile: path.join(this.logDir, `${name}.log`), restarts: 0 } as Child;
    this.spawn(child, args, env, 'w');
    this.children.push(child);
    return child;
  }

  /** SIGTERM everyone (newest first), SIGKILL whoever is still there after the grace period. */
  async stopAll(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const alive = this.children.filter((c) => isAlive(c.process)).reverse();
    for (const c of alive) c.process.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const c of alive) if (isAlive(c.process)) c.process.kill('SIGKILL');
    }, graceMs);
    await Promise.all(alive.map((c) => c.exited));
    clearTimeout(timer);
    fs.rmSync(this.pidFile, { force: true });
  }

  tail(child: Child, lines = 15): string {
    try {
      return fs.readFileSync(child.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  private spawn(child: Child, args: string[], env: Record<string, string>, flags: 'w' | 'a'): void {
    const out = fs.openSync(child.logFile, flags, 0o600);
    const proc = spawn(process.execPath, args, {
      stdio: ['pipe', out, out],
      env: { ...process.env, ...env, JIBE_EXIT_WITH_PARENT: '1' },
    });
    fs.closeSync(out);
    child.process = proc;
    child.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    void child.exited.then((code) => this.exited(child, code, args, env));
    this.writePids();
  }

  private exited(child: Child, code: number | null, args: string[], env: Record<string, string>): void {
    if (this.stopping) return;
    if (child.restarts >= MAX_RESTARTS) return this.onGiveUp(child, code);
    child.restarts++;
    this.onRestart(child, code);
    const delay = Math.min(5000, 250 * 2 ** (child.restarts - 1));
    setTimeout(() => {
      if (!this.stopping) this.spawn(child, args, env, 'a');
    }, delay).unref();
  }

  /** name → pid of every process, so users (and tests) can find them. */
  private writePids(): void {
    const pids = Object.fromEntries(this.children.filter((c) => c.process?.pid).map((c) => [c.name, c.process.pid]));
    fs.writeFileSync(this.pidFile, JSON.stringify(pids, null, 2) + '\n', { mode: 0o600 });
  }
}

function isAlive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/**
 * Call early in a child process: exit cleanly when the parent's stdin pipe
 * closes. Returns a function that stops watching, so the pipe no longer keeps
 * the process alive once its command has finished.
 */
export function exitWithParent(): () => void {
  if (process.env.JIBE_EXIT_WITH_PARENT !== '1' || process.stdin.isTTY) return () => {};
  const onClose = () => process.kill(process.pid, 'SIGTERM');
  process.stdin.on('error', () => {});
  process.stdin.on('close', onClose);
  process.stdin.resume();
  return () => {
    process.stdin.off('close', onClose);
    process.stdin.pause();
    (process.stdin as { unref?: () => void }).unref?.();
  };
}
