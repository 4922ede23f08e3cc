// The embedded ConfigStore: every rule in memory and in one file,
// `<dataDir>/config.json`, rewritten atomically per apply/delete. One file makes
// a batch all-or-nothing for free (one rename), and the rule set of a local mesh
// is small enough that rewriting it whole is cheap.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { JibeError } from '../errors/errors.ts';
import { compareResources, resourceKey } from '../model/resource.ts';
import type { Resource } from '../model/resource.ts';
import { ensurePrivateDir, removeTempFiles, storeIoError, writeFileAtomic } from '../state/atomic-file.ts';
import { acquireDataDirLock } from '../state/data-dir-lock.ts';
import type { DataDirLock } from '../state/data-dir-lock.ts';
import type { ApplyOptions, ConfigEvent, ConfigStore, ResourceRef } from './config-store.ts';

export const CONFIG_FILE_NAME = 'config.json';
const FORMAT_VERSION = 1;

/** What config.json holds. */
interface ConfigFile {
  formatVersion: number;
  /** Store revision: bumped by every write; a resource's resourceVersion is the revision that last wrote it. */
  revision: number;
  resources: Resource[];
}

type Listener = (events: ConfigEvent[]) => void;

export class FileConfigStore implements ConfigStore {
  readonly dataDir: string;
  readonly file: string;
  private readonly lock: DataDirLock;
  private resources: Map<string, Resource>;
  private revision: number;
  private readonly listeners = new Set<Listener>();
  /** Tail of the write queue: writes run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(dataDir: string, lock: DataDirLock, state: ConfigFile) {
    this.dataDir = dataDir;
    this.file = join(dataDir, CONFIG_FILE_NAME);
    this.lock = lock;
    this.revision = state.revision;
    this.resources = new Map(state.resources.map((r) => [resourceKey(r), r]));
  }

  /** Opens (creating if needed) the store in `dataDir`, taking the directory's lock. */
  static async open(dataDir: string): Promise<FileConfigStore> {
    const dir = resolve(dataDir);
    await ensurePrivateDir(dir);
    const lock = await acquireDataDirLock(dir);
    try {
      // Safe only now that we hold the lock: no one else can be mid-write here.
      await removeTempFiles(dir);
      const state = await readConfigFile(join(dir, CONFIG_FILE_NAME));
      return new FileConfigStore(dir, lock, state);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  async list(kind?: string): Promise<Resource[]> {
    this.assertOpen();
    const out: Resource[] = [];
    for (const r of this.resources.values()) if (kind === undefined || r.kind === kind) out.push(structuredClone(r));
    return out.sort(compareResources);
  }

  apply(resources: Resource[], options: ApplyOptions = {}): Promise<Resource[]> {
    return this.enqueue(async () => {
      // JSON round trip: what callers get back (and what is in memory) is exactly
      // what a restart will read, and the caller's objects are never aliased.
      const incoming = resources.map((r, i) => normalize(r, i));
      const seen = new Set<string>();
      for (const r of incoming) {
        const key = resourceKey(r);
        if (seen.has(key)) throw new JibeError('JIBE_ERR_DUPLICATE', 'the same resource appears twice in one apply', { resource: key });
        seen.add(key);
      }
      if (options.checkVersions) this.checkVersions(incoming);

      const revision = this.revision + 1;
      const version = String(revision);
      const now = new Date().toISOString();
      const next = new Map(this.resources);
      const stored: Resource[] = [];
      const events: ConfigEvent[] = [];
      for (const r of incoming) {
        const key = resourceKey(r);
        const existing = this.resources.get(key);
        if (existing && sameContent(existing, r)) {
          // A re-apply of identical content is not a change: no new version and
          // no event, so repeated `jibe apply` does not push config to every proxy.
          stored.push(existing);
          continue;
        }
        const metadata = { ...r.metadata, resourceVersion: version, creationTimestamp: existing?.metadata.creationTimestamp ?? now };
        const saved: Resource = { ...r, metadata };
        next.set(key, saved);
        stored.push(saved);
        events.push({ type: 'upsert', resource: saved });
      }
      if (events.length > 0) await this.commit(next, revision, events);
      return stored.map((r) => structuredClone(r));
    });
  }

  delete(refs: ResourceRef[]): Promise<Resource[]> {
    return this.enqueue(async () => {
      const keys: string[] = [];
      const missing: JibeError[] = [];
      for (const ref of refs) {
        const key = resourceKey({ kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } });
        if (keys.includes(key)) throw new JibeError('JIBE_ERR_DUPLICATE', 'the same resource appears twice in one delete', { resource: key });
        keys.push(key);
        if (!this.resources.has(key)) missing.push(new JibeError('JIBE_ERR_NOT_FOUND', 'resource not found', { resource: key }));
      }
      if (missing.length === 1) throw missing[0];
      if (missing.length > 1) {
        throw new JibeError('JIBE_ERR_NOT_FOUND', `${missing.length} resources not found; nothing was deleted`, { causes: missing });
      }
      if (keys.length === 0) return [];

      const revision = this.revision + 1;
      const next = new Map(this.resources);
      const removed: Resource[] = [];
      for (const key of keys) {
        const existing = this.resources.get(key) as Resource;
        next.delete(key);
        // The tombstone carries the revision of the delete, as Kubernetes does,
        // so watchers can order it after the last update.
        removed.push({ ...existing, metadata: { ...existing.metadata, resourceVersion: String(revision) } });
      }
      await this.commit(next, revision, removed.map((resource) => ({ type: 'delete', resource })));
      return removed.map((r) => structuredClone(r));
    });
  }

  watch(listener: Listener): () => void {
    this.assertOpen();
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Waits for queued writes, then releases the data directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.listeners.clear();
    await this.lock.release();
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    const run = this.queue.then(task);
    // The queue must go on after a failed write; the failure goes to its caller.
    this.queue = run.catch(() => undefined);
    return run;
  }

  private checkVersions(incoming: Resource[]): void {
    const conflicts: JibeError[] = [];
    for (const r of incoming) {
      const wanted = r.metadata.resourceVersion;
      if (wanted === undefined || wanted === '') continue;
      const key = resourceKey(r);
      const current = this.resources.get(key)?.metadata.resourceVersion;
      if (current !== wanted) {
        conflicts.push(
          new JibeError(
            'JIBE_ERR_CONFLICT',
            current === undefined ? `resource no longer exists (expected version ${wanted})` : `resource changed: expected version ${wanted}, stored version is ${current}`,
            { resource: key, hint: 'read the resource again and reapply your change' },
          ),
        );
      }
    }
    if (conflicts.length === 1) throw conflicts[0];
    if (conflicts.length > 1) {
      throw new JibeError('JIBE_ERR_CONFLICT', `${conflicts.length} resources changed since they were read; nothing was written`, {
        causes: conflicts,
        hint: 'read the resources again and reapply your change',
      });
    }
  }

  /**
   * Writes the new state durably, then makes it visible. Memory changes only
   * after the rename, so a failed write leaves memory and disk agreeing on the
   * old state; listeners hear only about changes that survive a crash.
   */
  private async commit(next: Map<string, Resource>, revision: number, events: ConfigEvent[]): Promise<void> {
    const file: ConfigFile = { formatVersion: FORMAT_VERSION, revision, resources: [...next.values()].sort(compareResources) };
    // The revision is spent even if the write fails: a failure after the rename
    // (directory fsync) leaves it on disk, and it must not name other content later.
    this.revision = revision;
    await writeFileAtomic(this.file, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
    this.resources = next;
    for (const listener of [...this.listeners]) {
      try {
        // Each listener gets its own copy: one cannot corrupt another's view or the store.
        listener(structuredClone(events));
      } catch (err) {
        // The write is durable and the caller must hear that; a faulty listener
        // must neither undo it nor starve the listeners after it.
        process.emitWarning(`config store watch listener threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, 'JibeWarning');
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): JibeError {
    return new JibeError('JIBE_ERR_STORE_IO', `config store ${this.file} is closed`, { file: this.file });
  }
}

async function readConfigFile(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { formatVersion: FORMAT_VERSION, revision: 0, resources: [] };
    throw storeIoError('read', path, err);
  }
  // Never start empty over a file we cannot read: that would delete every rule
  // at the next write. Stop and let the operator decide.
  const corrupt = (why: string) =>
    new JibeError('JIBE_ERR_STORE_CORRUPT', `${path} is not a valid Jibe config store: ${why}`, {
      file: path,
      hint: 'restore it from a backup, or move it aside to start with no rules (Jibe never resets it by itself)',
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw corrupt((err as Error).message);
  }
  const o = parsed as Partial<ConfigFile> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw corrupt('not a JSON object');
  if (o.formatVersion !== FORMAT_VERSION) throw corrupt(`unsupported formatVersion ${JSON.stringify(o.formatVersion)} (this Jibe reads ${FORMAT_VERSION})`);
  if (!Number.isSafeInteger(o.revision) || (o.revision as number) < 0) throw corrupt('revision is not a non-negative integer');
  if (!Array.isArray(o.resources)) throw corrupt('resources is not a list');
  const keys = new Set<string>();
  o.resources.forEach((r, i) => {
    if (!isResourceShape(r)) throw corrupt(`resources[${i}] has no kind or metadata.name`);
    const key = resourceKey(r);
    if (keys.has(key)) throw corrupt(`resources[${i}] (${key}) appears twice`);
    keys.add(key);
  });
  return o as ConfigFile;
}

function isResourceShape(r: unknown): r is Resource {
  const o = r as Resource | null;
  return typeof o === 'object' && o !== null && typeof o.kind === 'string' && o.kind !== '' && typeof o.metadata === 'object' && o.metadata !== null && typeof o.metadata.name === 'string' && o.metadata.name !== '';
}

/** A detached, JSON-clean copy of an incoming resource; rejects what the store cannot key. */
function normalize(r: Resource, index: number): Resource {
  if (!isResourceShape(r)) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `resource at index ${index} has no kind or metadata.name`, { documentIndex: index });
  }
  try {
    return JSON.parse(JSON.stringify(r)) as Resource;
  } catch (err) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `resource cannot be stored as JSON: ${(err as Error).message}`, { resource: resourceKey(r) });
  }
}

/** Equal apart from the fields the store itself sets. */
function sameContent(a: Resource, b: Resource): boolean {
  const { resourceVersion: _av, creationTimestamp: _ac, ...am } = a.metadata;
  const { resourceVersion: _bv, creationTimestamp: _bc, ...bm } = b.metadata;
  return a.apiVersion === b.apiVersion && isDeepStrictEqual(am, bm) && isDeepStrictEqual(a.spec, b.spec) && isDeepStrictEqual(rest(a), rest(b));
}

/** Top-level fields besides the envelope (e.g. `status`), compared too so none is dropped silently. */
function rest(r: Resource): Record<string, unknown> {
  const { apiVersion: _a, kind: _k, metadata: _m, spec: _s, ...others } = r as Resource & Record<string, unknown>;
  return others;
}

