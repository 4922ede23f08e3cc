// Crash-safe file writes for the embedded stores. A reader (or a restart after
// a crash or power loss) sees either the old content or the new one, never a
// torn file, and secrets are never readable by other users, not even for an
// instant.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { JibeError } from '../errors/errors.ts';

export interface WriteFileAtomicOptions {
  /** Permission bits of the new file; owner-only by default. */
  mode?: number;
}

/** Temp files are `<target>.<pid>-<hex>.tmp`; nothing a store writes on purpose ends like that. */
const TEMP_FILE = /\.\d+-[0-9a-f]{12}\.tmp$/;

export function isTempFileName(name: string): boolean {
  return TEMP_FILE.test(name);
}

/**
 * Replaces `path` with `data` atomically and durably:
 * temp file in the same directory (rename is only atomic within one file system),
 * fsync the data, rename over the target, fsync the directory so the rename
 * itself survives a power loss.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: WriteFileAtomicOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o600;
  const dir = dirname(path);
  const temp = join(dir, `${basename(path)}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    // 'wx' = O_CREAT|O_EXCL: never follows a planted symlink or reuses a file
    // someone else created. The mode is applied at creation, so there is no
    // window where a secret sits in a world-readable file (a chmod afterwards
    // would leave one).
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    renamed = true;
    await fsyncDir(dir);
  } catch (err) {
    if (!renamed) await unlink(temp).catch(() => undefined);
    throw storeIoError('write', path, err);
  }
}

/**
 * Creates `path` (and missing parents) owner-only (0700). An existing directory
 * is left as it is: it may be one the user chose and shares on purpose; the
 * files inside are 0600 anyway.
 */
export async function ensurePrivateDir(path: string): Promise<void> {
  const target = resolve(path);
  let first: string | undefined;
  try {
    // Node applies `mode` to every directory the recursive mkdir creates.
    first = await mkdir(target, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw storeIoError('create directory', target, err);
  }
  if (first === undefined) return;
  // A new directory's entry lives in its parent: sync each parent that gained one,
  // or files written later could vanish with their directory after a power loss.
  const parents: string[] = [];
  for (let dir = target; ; dir = dirname(dir)) {
    parents.push(dirname(dir));
    if (dir === first || dirname(dir) === dir) break;
  }
  for (const parent of parents) {
    await fsyncDir(parent).catch((err) => {
      throw storeIoError('sync directory', parent, err);
    });
  }
}

/**
 * Deletes temp files left in `dir` by a write that crashed before its rename.
 * Only call it while holding the directory's lock: otherwise the temp file may
 * belong to a write still in flight.
 */
export async function removeTempFiles(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw storeIoError('read directory', dir, err);
  }
  for (const name of names) {
    if (!isTempFileName(name)) continue;
    await unlink(join(dir, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw storeIoError('remove leftover temp file', join(dir, name), err);
    });
  }
}

/** fsync on a directory makes its entries (creates, renames, unlinks) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    // Windows cannot open or sync a directory; its rename is durable on its own.
    const code = (err as NodeJS.ErrnoException).code;
    if (process.platform === 'win32' && (code === 'EISDIR' || code === 'EPERM' || code === 'EACCES')) return;
    throw err;
  } finally {
    await handle?.close();
  }
}

/** The JIBE_ERR_STORE_IO users see: what was attempted, on which file, and why. */
export function storeIoError(action: string, path: string, cause: unknown): JibeError {
  if (cause instanceof JibeError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const error = new JibeError('JIBE_ERR_STORE_IO', `cannot ${action} ${path}: ${reason}`, {
    file: path,
    hint:
      code === 'EACCES' || code === 'EPERM'
        ? 'check that the control plane user owns the data directory'
        : code === 'ENOSPC'
          ? 'free space on the disk holding the data directory'
          : 'check the data directory (--data-dir) is on a writable local disk',
  });
  error.cause = cause;
  return error;
}
