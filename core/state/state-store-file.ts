// The embedded StateStore: one file per key under `<dataDir>/state/`, each
// written atomically with owner-only permissions. One file per key (unlike the
// config store's single file) because these values are independent and some are
// secrets (CA keys) that should not be rewritten whenever a join token is added.
//
// Everything is also held in memory: the directory lock makes this process the
// only writer, so memory and disk cannot drift, and reads need no I/O.
import { createHash } from 'node:crypto';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { JibeError } from '../errors/errors.ts';
import { ensurePrivateDir, fsyncDir, isTempFileName, removeTempFiles, storeIoError, writeFileAtomic } from './atomic-file.ts';
import { acquireDataDirLock } from './data-dir-lock.ts';
import type { DataDirLock } from './data-dir-lock.ts';
import type { PutOptions, StateEntry, StateStore } from './state-store.ts';

export const STATE_DIR_NAME = 'state';
const KEY_FILE_SUFFIX = '.json';
/**
 * Highest version ever given to a key that was later deleted. Versions come from
 * one store-wide counter, rebuilt at open as the max over all files; without this
 * floor, deleting the newest key and restarting would hand out its versions again,
 * and a writer holding the old version could CAS over a recreated key (ABA).
 */
const REVISION_FILE_NAME = 'revision';
/** Encoded names longer than this are hashed: file names are limited to 255 bytes. */
const MAX_ENCODED_NAME = 200;

/** What each key file holds. The key is kept inside too, for hashed names and for checking. */
interface KeyFile {
  key: string;
  version: string;
  value: unknown;
}

interface Slot {
  /** The value as JSON text: every get parses a fresh copy, so callers cannot mutate the store. */
  json: string;
  version: number;
}

export class FileStateStore implements StateStore {
  readonly dir: string;
  private readonly lock: DataDirLock;
  private readonly entries: Map<string, Slot>;
  /** Last version handed out (store-wide, so per key it only increases). */
  private revision: number;
  /** Persisted floor for `revision`; see REVISION_FILE_NAME. */
  private floor: number;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(dir: string, lock: DataDirLock, entries: Map<string, Slot>, floor: number) {
    this.dir = dir;
    this.lock = lock;
    this.entries = entries;
    this.floor = floor;
    let max = floor;
    for (const slot of entries.values()) if (slot.version > max) max = slot.version;
    this.revision = max;
  }

  /** Opens (creating if needed) `<dataDir>/state`, taking that directory's lock. */
  static async open(dataDir: string): Promise<FileStateStore> {
    const dir = join(resolve(dataDir), STATE_DIR_NAME);
    await ensurePrivateDir(dir);
    const lock = await acquireDataDirLock(dir);
    try {
      await removeTempFiles(dir);
      const { entries, floor } = await loadAll(dir);
      return new FileStateStore(dir, lock, entries, floor);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  async get<T = unknown>(key: string): Promise<StateEntry<T> | undefined> {
    this.assertOpen();
    const slot = this.entries.get(key);
    return slot && toEntry<T>(key, slot);
  }

  put<T = unknown>(key: string, value: T, options: PutOptions = {}): Promise<StateEntry<T>> {
    return this.enqueue(async () => {
      const name = fileNameForKey(key);
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch (err) {
        throw new JibeError('JIBE_ERR_BAD_REQUEST', `state value for ${key} cannot be stored as JSON: ${(err as Error).message}`);
      }
      if (json === undefined) throw new JibeError('JIBE_ERR_BAD_REQUEST', `state value for ${key} cannot be stored as JSON`);
      const current = this.entries.get(key);
      if (options.ifVersion !== undefined) checkVersion(key, current, options.ifVersion);

      // Taken before the write: if the write fails after its rename (directory
      // fsync), the number is on disk and must never be handed out again.
      const version = ++this.revision;
      // `secret` needs nothing extra: every state file is 0600 and values are never logged.
      const file = `{"key":${JSON.stringify(key)},"version":"${version}","value":${json}}\n`;
      await writeFileAtomic(join(this.dir, name), file, { mode: 0o600 });
      const slot = { json, version };
      this.entries.set(key, slot);
      return toEntry<T>(key, slot);
    });
  }

  delete(key: string, options: { ifVersion?: string } = {}): Promise<boolean> {
    return this.enqueue(async () => {
      const path = join(this.dir, fileNameForKey(key));
      const current = this.entries.get(key);
      if (!current) return false;
      if (options.ifVersion !== undefined) checkVersion(key, current, options.ifVersion);
      if (current.version > this.floor) {
        // The floor goes to disk before the key disappears (see REVISION_FILE_NAME).
        await writeFileAtomic(join(this.dir, REVISION_FILE_NAME), JSON.stringify({ revision: this.revision }) + '\n', { mode: 0o600 });
        this.floor = this.revision;
      }
      try {
        await unlink(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storeIoError('delete', path, err);
      }
      // Gone from disk now, so gone from memory even if making it durable fails.
      this.entries.delete(key);
      await fsyncDir(this.dir).catch((err) => {
        throw storeIoError('sync directory', this.dir, err);
      });
      return true;
    });
  }

  async list<T = unknown>(prefix: string): Promise<StateEntry<T>[]> {
    this.assertOpen();
    const keys: string[] = [];
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) keys.push(key);
    keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return keys.map((key) => toEntry<T>(key, this.entries.get(key) as Slot));
  }

  /** Waits for queued writes, then releases the directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.lock.release();
  }

  /** Writes run one at a time so a CAS check and its write cannot interleave with another write. */
  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): JibeError {
    return new JibeError('JIBE_ERR_STORE_IO', `state store ${this.dir} is closed`, { file: this.dir });
  }
}

function toEntry<T>(key: string, slot: Slot): StateEntry<T> {
  return { key, value: JSON.parse(slot.json) as T, version: String(slot.version) };
}

function checkVersion(key: string, current: Slot | undefined, wanted: string | null): void {
  const actual = current ? String(current.version) : null;
  if (actual === wanted) return;
  const message =
    wanted === null
      ? `state key ${key} already exists (version ${actual})`
      : actual === null
        ? `state key ${key} does not exist (expected version ${wanted})`
        : `state key ${key} changed: expected version ${wanted}, stored version is ${actual}`;
  throw new JibeError('JIBE_ERR_CONFLICT', message, { resource: key, hint: 'read the key again and retry' });
}

/**
 * Maps a key to a file name that is safe and unique on every file system:
 * `[a-z0-9._-]` stay, every other UTF-8 byte becomes `%XX` (so `/` cannot make
 * a path, and `A` and `a` stay apart on case-insensitive disks). Long keys become
 * `~<sha256>`; `~` never appears unescaped, so the two forms cannot collide.
 */
export function fileNameForKey(key: string): string {
  if (typeof key !== 'string' || key === '' || !key.isWellFormed()) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `invalid state key ${JSON.stringify(key)}: must be a non-empty, well-formed string`);
  }
  let encoded = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    const safe = (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2e || byte === 0x5f || byte === 0x2d;
    encoded += safe ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  if (encoded.length > MAX_ENCODED_NAME) encoded = '~' + createHash('sha256').update(key).digest('hex');
  return encoded + KEY_FILE_SUFFIX;
}

async function loadAll(dir: string): Promise<{ entries: Map<string, Slot>; floor: number }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw storeIoError('read directory', dir, err);
  }
  const entries = new Map<string, Slot>();
  let floor = 0;
  for (const name of names) {
    const path = join(dir, name);
    if (name === REVISION_FILE_NAME) {
      const o = parseJson(path, await read(path)) as { revision?: unknown };
      if (!Number.isSafeInteger(o?.revision) || (o.revision as number) < 0) throw corrupt(path, 'revision is not a non-negative integer');
      floor = o.revision as number;
      continue;
    }
    // Lock file, temp files (already removed) and anything not ours are not keys.
    if (!name.endsWith(KEY_FILE_SUFFIX) || isTempFileName(name)) continue;
    const o = parseJson(path, await read(path)) as Partial<KeyFile> | null;
    if (typeof o !== 'object' || o === null || typeof o.key !== 'string' || !('value' in o)) throw corrupt(path, 'missing key or value');
    const version = Number(o.version);
    if (typeof o.version !== 'string' || !Number.isSafeInteger(version) || version < 1) throw corrupt(path, 'version is not a positive integer');
    // A file renamed or copied by hand would otherwise answer for the wrong key.
    if (fileNameForKey(o.key) !== name) throw corrupt(path, `holds key ${JSON.stringify(o.key)}, which belongs in another file`);
    entries.set(o.key, { json: JSON.stringify(o.value), version });
  }
  return { entries, floor };
}

async function read(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw storeIoError('read', path, err);
  }
}

function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw corrupt(path, (err as Error).message);
  }
}

function corrupt(path: string, why: string): JibeError {
  return new JibeError('JIBE_ERR_STORE_CORRUPT', `${path} is not a valid Jibe state file: ${why}`, {
    file: path,
    hint: 'restore it from a backup; Jibe does not start over a state file it cannot read, so no key or token is lost silently',
  });
}
