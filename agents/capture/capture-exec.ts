// Runs iptables commands. Injected into apply/remove so unit tests use a fake
// and integration tests run the real thing inside a network namespace.
import { spawn } from 'node:child_process';

/** Runs `command args…` with `input` on stdin; resolves stdout, rejects with a CommandError. */
export type CommandRunner = (command: string, args: readonly string[], input?: string) => Promise<string>;

export class CommandError extends Error {
  readonly command: string;
  readonly args: readonly string[];
  /** Exit status, or the spawn error code (`ENOENT` when the program is missing). */
  readonly exitCode: number | string | null;
  readonly stderr: string;

  constructor(command: string, args: readonly string[], exitCode: number | string | null, stderr: string) {
    super(`${[command, ...args].join(' ')} failed (${typeof exitCode === 'number' ? 'exit ' + exitCode : exitCode ?? 'killed'})${stderr.trim() ? ': ' + stderr.trim() : ''}`);
    this.name = 'CommandError';
    this.command = command;
    this.args = args;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface CommandRunnerOptions {
  /** Run every command inside this network namespace (`ip netns exec <netns> …`). */
  netns?: string;
  /** A command still running after this long is killed (iptables waits on a lock at most this long). */
  timeoutMs?: number;
}

export function createCommandRunner(options: CommandRunnerOptions = {}): CommandRunner {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return (command, args, input) => {
    const [file, argv] = options.netns ? ['ip', ['netns', 'exec', options.netns, command, ...args]] : [command, [...args]];
    return new Promise<string>((resolve, reject) => {
      const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e: NodeJS.ErrnoException) => reject(new CommandError(command, args, e.code ?? 'spawn failed', e.message)));
      child.on('close', (code, signal) => {
        const stderr = Buffer.concat(err).toString('utf8');
        if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
        else reject(new CommandError(command, args, code ?? signal, stderr));
      });
      // A program that exits without reading stdin makes the write fail with EPIPE; the exit code tells why.
      child.stdin.on('error', () => {});
      child.stdin.end(input ?? '');
    });
  };
}
