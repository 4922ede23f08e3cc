// Starts child processes with their output in log files, and stops every one
// of them on the way out. Children get a stdin pipe and exit when it closes
// (JIBE_EXIT_WITH_PARENT), so none outlives `jibe up` even if it is killed.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface Child {
  name: string;
  process: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

export class ProcessSupervisor {
  private readonly children: Child[] = [];
  private readonly logDir: string;
  private stopping = false;
  onUnexpectedExit: (child: Child, code: number | null) => void = () => {};

  constructor(logDir: string) {
    this.logDir = logDir;
    fs.mkdirSync(logDir, { recursive: true, mode: 0o700 });
  }

  start(name: string, args: string[], env: Record<string, string> = {}): Child {
    const logFile = path.join(this.logDir, `${name}.log`);
    const out = fs.openSync(logFile, 'w', 0o600);
    const proc = spawn(process.execPath, args, {
      stdio: ['pipe', out, out],
      env: { ...process.env, ...env, JIBE_EXIT_WITH_PARENT: '1' },
    });
    fs.closeSync(out);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const child: Child = { name, process: proc, logFile, exited };
    void exited.then((code) => {
      if (!this.stopping) this.onUnexpectedExit(child, code);
    });
    this.children.push(child);
    return child;
  }

  /** SIGTERM everyone (newest first), SIGKILL whoever is still there after the grace period. */
  async stopAll(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const alive = this.children.filter((c) => c.process.exitCode === null && c.process.signalCode === null).reverse();
    for (const c of alive) c.process.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const c of alive) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
    }, graceMs);
    await Promise.all(alive.map((c) => c.exited));
    clearTimeout(timer);
  }

  tail(child: Child, lines = 15): string {
    try {
      return fs.readFileSync(child.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

/** Call early in a child process: exit cleanly when the parent's stdin pipe closes. */
export function exitWithParent(): void {
  if (process.env.JIBE_EXIT_WITH_PARENT !== '1' || process.stdin.isTTY) return;
  process.stdin.on('error', () => {});
  process.stdin.on('close', () => process.kill(process.pid, 'SIGTERM'));
  process.stdin.resume();
}
