// One control plane per data directory. Two processes writing the same
// config.json would each overwrite the other's batches from their own memory,
// silently losing rules, so a store takes this lock before it reads anything.
//
// The lock is a file `<dir>/lock` created with O_EXCL and holding the owner's
// pid. Node has no flock(), and a pid file also tells the user *who* holds the
// directory. A lock whose process is gone (crash, kill -9, reboot) is stale and
// taken over, so a crashed control plane restarts without manual cleanup.
// Limits: liveness is judged by pid on the same host name, so a lock on a shared
// (network) disk held from another host is always refused, never taken over.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { open, readFile, unlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { JibeError } from '../errors/errors.ts';
import { storeIoError } from './atomic-file.ts';

export const LOCK_FILE_NAME = 'lock';
/** Guards the removal of a stale lock; see removeStale. */
const TAKEOVER_SUFFIX = '.takeover';

/** What the lock file holds (JSON). */
export interface LockOwner {
  pid: number;
  /** Pids only mean something on one host (and in one pid namespace). */
  hostname: string;
  /** Tells this lock apart from an older one with the same pid (containers are always pid 1). */
  token: string;
  acquiredAt: string;
}

export interface DataDirLock {
  readonly dir: string;
  readonly path: string;
  readonly owner: LockOwner;
  /** Removes the lock file if it is still ours. Idempotent. */
  release(): Promise<void>;
}

/**
 * Lock files held (or being acquired) by this process: a second opener in the same
 * process is refused too, and concurrent acquirers here never race each other.
 */
const heldHere = new Set<string>();

const MAX_ATTEMPTS = 8;

/** Takes the exclusive lock on `dir` (which must exist) or fails with JIBE_ERR_STORE_IO naming the holder. */
export async function acquireDataDirLock(dir: string): Promise<DataDirLock> {
  const absDir = resolve(dir);
  const path = join(absDir, LOCK_FILE_NAME);
  if (heldHere.has(path)) throw inUseError(absDir, path, { pid: process.pid, hostname: hostname() }, 'this process already has it open');
  heldHere.add(path);
  const owner: LockOwner = { pid: process.pid, hostname: hostname(), token: randomBytes(8).toString('hex'), acquiredAt: new Date().toISOString() };
  const content = JSON.stringify(owner) + '\n';
  try {
    // Each lost race (the file vanished, or a rival is taking a stale lock over)
    // restarts from the top after a short pause; a few rounds settle any
    // realistic contention, and the loser then sees the winner's live lock.
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await delay(10 * attempt);
      if (await tryCreate(path, content)) return makeLock(absDir, path, owner, content);
      const existing = await readIfExists(path);
      if (existing === undefined) continue; // released meanwhile
      const holder = parseOwner(existing);
      if (!holder) {
        // Empty or garbled: a control plane between create and write, or one that
        // crashed right there. Refusing is safe; guessing could let two in.
        throw new JibeError('JIBE_ERR_STORE_IO', `data directory ${absDir} has an unreadable lock file ${path}`, {
          file: path,
          hint: 'another control plane may be starting; if none runs on this data directory, delete the lock file',
        });
      }
      if (holder.hostname !== owner.hostname) {
        throw inUseError(absDir, path, holder, `on host ${holder.hostname}; its liveness cannot be checked from here`);
      }
      if (isAlive(holder.pid)) throw inUseError(absDir, path, holder);
      await removeStale(path, existing, owner);
    }
    throw new JibeError('JIBE_ERR_STORE_IO', `could not lock data directory ${absDir}: another process kept it busy`, {
      file: path,
      hint: `several control planes are starting on this data directory at once; stop all but one. If none runs, delete ${path} and ${path}${TAKEOVER_SUFFIX}`,
    });
  } catch (err) {
    heldHere.delete(path);
    throw err;
  }
}

/**
 * Deletes a stale lock. Read-judge-unlink is not atomic: two processes could both
 * judge the same stale lock, one replaces it with its fresh lock, and the other's
 * unlink would then delete that fresh lock, letting both in. So the unlink happens
 * only under a second O_EXCL file, `lock.takeover`, and only if the lock still holds
 * exactly the stale content (a fresh lock never does: it has a new token).
 */
async function removeStale(path: string, staleContent: string, owner: LockOwner): Promise<void> {
  const mutex = path + TAKEOVER_SUFFIX;
  if (!(await tryCreate(mutex, JSON.stringify(owner) + '\n'))) {
    // A rival is mid-takeover; the caller retries. If the rival died right there,
    // its mutex would block every start forever, so a dead one's mutex is cleared.
    const text = await readIfExists(mutex);
    const rival = text === undefined ? undefined : parseOwner(text);
    if (rival && rival.hostname === owner.hostname && !isAlive(rival.pid)) {
      await unlink(mutex).catch(() => undefined);
    }
    return;
  }
  try {
    if ((await readIfExists(path)) === staleContent) {
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw storeIoError('remove stale lock file', path, err);
      });
    }
  } finally {
    await unlink(mutex).catch(() => undefined);
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw storeIoError('read lock file', path, err);
  }
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw storeIoError('create lock file', path, err);
  }
  try {
    await handle.writeFile(content);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw storeIoError('write lock file', path, err);
  }
  await handle.close();
  return true;
}

function makeLock(dir: string, path: string, owner: LockOwner, content: string): DataDirLock {
  let released = false;
  return {
    dir,
    path,
    owner,
    async release() {
      if (released) return;
      released = true;
      try {
        // Only remove our own lock: if an operator deleted ours and another control
        // plane started, its lock must survive our shutdown.
        const current = await readFile(path, 'utf8').catch(() => undefined);
        if (current === content) {
          await unlink(path).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw storeIoError('remove lock file', path, err);
          });
        }
      } finally {
        // Only now: an opener in this process admitted earlier would see our pid,
        // judge the lock stale, and could lose its fresh lock to our unlink.
        heldHere.delete(path);
      }
    },
  };
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (Number.isSafeInteger(o.pid) && (o.pid as number) > 0 && typeof o.hostname === 'string' && typeof o.token === 'string') {
      return o as LockOwner;
    }
  } catch {
    // fall through: unreadable
  }
  return undefined;
}

/**
 * Signal 0 checks existence without touching the process. Our own pid counts as
 * dead here: `heldHere` already refused any acquirer in this process, so a file
 * naming our pid was left by an earlier incarnation (in a container the control
 * plane is pid 1 on every restart).
 */
function isAlive(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user, so it is alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function inUseError(dir: string, path: string, holder: Pick<LockOwner, 'pid' | 'hostname'>, why?: string): JibeError {
  return new JibeError(
    'JIBE_ERR_STORE_IO',
    `data directory ${dir} is in use by another control plane (pid ${holder.pid}${why ? `, ${why}` : ''})`,
    { file: path, hint: 'stop the other control plane, or start this one with another --data-dir' },
  );
}
