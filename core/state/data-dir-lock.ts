// One control plane per data directory. Two processes writing the same
// config.json would each overwrite the other's batches from their own memory,
// silently losing rules, so a store takes this lock before it reads anything.
//
// The lock is a file `<dir>/lock` created with O_EXCL and holding the owner's
// pid. Node has no flock(), and a pid file also tells the user *who* holds the
// directory. A lock whose process is gone (crash, kill -9, reboot) is stale and
// taken over, so a crashed control plane restarts without manual cleanup.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { JibeError } from '../errors/errors.ts';
import { storeIoError } from './atomic-file.ts';

export const LOCK_FILE_NAME = 'lock';

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

/** Lock files held by this process: a second opener in the same process must be refused too. */
const heldHere = new Set<string>();

const MAX_ATTEMPTS = 5;

/** Takes the exclusive lock on `dir` (which must exist) or fails with JIBE_ERR_STORE_IO naming the holder. */
export async function acquireDataDirLock(dir: string): Promise<DataDirLock> {
  const absDir = resolve(dir);
  const path = join(absDir, LOCK_FILE_NAME);
  if (heldHere.has(path)) throw inUseError(absDir, path, { pid: process.pid, hostname: hostname() }, 'this process already has it open');
  const owner: LockOwner = { pid: process.pid, hostname: hostname(), token: randomBytes(8).toString('hex'), acquiredAt: new Date().toISOString() };
  const content = JSON.stringify(owner) + '\n';

  // Each lost race (the file vanished or changed between two steps) restarts
  // from the top; a few rounds settle any realistic contention.
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (await tryCreate(path, content)) {
      heldHere.add(path);
      return makeLock(absDir, path, owner, content);
    }
    let existing: string;
    try {
      existing = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw storeIoError('read lock file', path, err);
    }
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
    await takeOverStale(path, existing);
  }
  throw new JibeError('JIBE_ERR_STORE_IO', `could not lock data directory ${absDir}: its lock file kept changing`, {
    file: path,
    hint: 'several control planes are starting on this data directory at once; stop all but one or use another --data-dir',
  });
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

/**
 * Removes a stale lock without removing a fresh one by mistake: a rival may have
 * taken the stale lock over between our read and our unlink. So the lock is first
 * renamed (atomic, exactly one rival wins it) to a private name, then checked to
 * still be the stale content we judged; if it is someone's fresh lock, it is put back.
 */
async function takeOverStale(path: string, staleContent: string): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // a rival removed it first
    throw storeIoError('take over stale lock file', path, err);
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== staleContent) {
    // link() fails rather than overwrites if yet another lock appeared meanwhile.
    await link(aside, path).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
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
      heldHere.delete(path);
      // Only remove our own lock: if an operator deleted ours and another control
      // plane started, its lock must survive our shutdown.
      const current = await readFile(path, 'utf8').catch(() => undefined);
      if (current === content) {
        await unlink(path).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw storeIoError('remove lock file', path, err);
        });
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
 * dead here: a lock we hold is caught by `heldHere` above, so a file naming our pid
 * was left by an earlier incarnation (in a container the control plane is pid 1 on
 * every restart).
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
