// The control plane's own state in the cluster: secret entries (CA keys, join
// tokens) in Secrets, the rest in ConfigMaps, one object per key in the
// control plane's namespace. Kubernetes names cannot hold every key, so the
// object is named by the key's hash and carries the key in an annotation.
// Compare-and-set maps onto the API's own optimistic concurrency: the entry's
// version is the object's resourceVersion, and a write names the version it
// replaces, so two replicas can never both win.
import { createHash, randomUUID } from 'node:crypto';
import type { PutOptions, StateEntry, StateStore } from '../../core/state/state-store.ts';
import { JibeError } from '../../core/errors/errors.ts';
import { KubeApiError, kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import type { KubeObject } from './kube-types.ts';

export const STATE_LABEL = 'jibe.dev/state';
export const STATE_KEY_ANNOTATION = 'jibe.dev/state-key';
const WRITE_ANNOTATION = 'jibe.dev/write-id';

interface StateObject extends KubeObject {
  data?: Record<string, string>;
  type?: string;
}

type Kind = 'secrets' | 'configmaps';

export class KubernetesStateStore implements StateStore {
  private readonly client: KubeClient;
  private readonly namespace: string;
  /** Label value telling this store's objects from another's in the same namespace. */
  private readonly instance: string;
  private closed = false;

  constructor(client: KubeClient, options: { namespace: string; instance?: string }) {
    this.client = client;
    this.namespace = options.namespace;
    this.instance = options.instance ?? 'control-plane';
  }

  async get<T = unknown>(key: string): Promise<StateEntry<T> | undefined> {
    this.assertOpen();
    const found = await this.find(key);
    return found && this.entry<T>(found.object, found.kind);
  }

  async put<T = unknown>(key: string, value: T, options: PutOptions = {}): Promise<StateEntry<T>> {
    this.assertOpen();
    checkKey(key);
    const json = JSON.stringify(value);
    if (json === undefined) throw new JibeError('JIBE_ERR_BAD_REQUEST', `state value for ${key} is not JSON`, { field: 'value' });
    const kind: Kind = options.secret ? 'secrets' : 'configmaps';
    for (;;) {
      const found = await this.find(key);
      if (options.ifVersion === null && found) throw conflict(key, 'it exists');
      if (typeof options.ifVersion === 'string' && found?.object.metadata.resourceVersion !== options.ifVersion) throw conflict(key, found ? `its version is ${found.object.metadata.resourceVersion}` : 'it does not exist');
      const body = this.object(key, json, kind);
      try {
        let written: StateObject;
        if (found && found.kind === kind) {
          body.metadata.resourceVersion = found.object.metadata.resourceVersion;
          written = await this.client.request<StateObject>('PUT', this.path(kind, body.metadata.name), { body });
        } else {
          written = await this.client.request<StateObject>('POST', this.path(kind), { body });
          // The entry moved between Secret and ConfigMap (its secrecy changed): drop the old one, only as we read it.
          if (found) await this.deleteObject(found.kind, found.object.metadata.name, found.object.metadata.resourceVersion).catch(() => undefined);
        }
        return this.entry<T>(written, kind);
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 409) {
          if (options.ifVersion !== undefined) throw conflict(key, 'it changed meanwhile');
          continue; // unconditional write: read again and retry
        }
        throw err;
      }
    }
  }

  async delete(key: string, options: { ifVersion?: string } = {}): Promise<boolean> {
    this.assertOpen();
    const found = await this.find(key);
    if (!found) {
      if (options.ifVersion !== undefined) throw conflict(key, 'it does not exist');
      return false;
    }
    if (options.ifVersion !== undefined && found.object.metadata.resourceVersion !== options.ifVersion) throw conflict(key, `its version is ${found.object.metadata.resourceVersion}`);
    try {
      await this.deleteObject(found.kind, found.object.metadata.name, options.ifVersion);
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) {
        if (options.ifVersion !== undefined) throw conflict(key, 'it was deleted meanwhile');
        return false;
      }
      if (err instanceof KubeApiError && err.status === 409) throw conflict(key, 'it changed meanwhile');
      throw err;
    }
  }

  async list<T = unknown>(prefix: string): Promise<StateEntry<T>[]> {
    this.assertOpen();
    const selector = `${STATE_LABEL}=${this.instance}`;
    const out: StateEntry<T>[] = [];
    for (const kind of ['secrets', 'configmaps'] as const) {
      const { items } = await this.client.list<StateObject>(this.path(kind), { labelSelector: selector });
      for (const item of items) {
        const key = item.metadata.annotations?.[STATE_KEY_ANNOTATION];
        if (key !== undefined && key.startsWith(prefix)) out.push(this.entry<T>(item, kind));
      }
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private async find(key: string): Promise<{ kind: Kind; object: StateObject } | undefined> {
    const name = objectName(key, this.instance);
    for (const kind of ['secrets', 'configmaps'] as const) {
      const object = await this.client.get<StateObject>(this.path(kind, name));
      if (object) return { kind, object };
    }
    return undefined;
  }

  private deleteObject(kind: Kind, name: string, resourceVersion: string | undefined): Promise<unknown> {
    const body = resourceVersion ? { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion } } : undefined;
    return this.client.request('DELETE', this.path(kind, name), { body });
  }

  private object(key: string, json: string, kind: Kind): StateObject & { metadata: StateObject['metadata'] } {
    const metadata = {
      name: objectName(key, this.instance),
      namespace: this.namespace,
      labels: { [STATE_LABEL]: this.instance, 'app.kubernetes.io/part-of': 'jibe' },
      // A write of an unchanged value must still change the version (the contract says every write does); the API skips no-op updates.
      annotations: { [STATE_KEY_ANNOTATION]: key, [WRITE_ANNOTATION]: randomUUID() },
    } as StateObject['metadata'];
    if (kind === 'secrets') return { apiVersion: 'v1', kind: 'Secret', metadata, type: 'jibe.dev/state', data: { value: Buffer.from(json).toString('base64') } };
    return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: { value: json } };
  }

  private entry<T>(o: StateObject, kind: Kind): StateEntry<T> {
    const raw = o.data?.value ?? 'null';
    const json = kind === 'secrets' ? Buffer.from(raw, 'base64').toString() : raw;
    let value: T;
    try {
      value = JSON.parse(json) as T;
    } catch {
      throw new JibeError('JIBE_ERR_STORE_CORRUPT', `${kind === 'secrets' ? 'Secret' : 'ConfigMap'} ${this.namespace}/${o.metadata.name} does not hold JSON`, { hint: 'delete the object; Jibe recreates what it needs' });
    }
    return { key: o.metadata.annotations?.[STATE_KEY_ANNOTATION] ?? '', value, version: o.metadata.resourceVersion ?? '' };
  }

  private path(kind: Kind, name?: string): string {
    return kubePath('v1', kind, this.namespace, name);
  }

  private assertOpen(): void {
    if (this.closed) throw new JibeError('JIBE_ERR_STORE_IO', 'the Kubernetes state store is closed');
  }
}

/** `jibe-state-<hash>`: a valid object name for any key, distinct per store instance. */
export function objectName(key: string, instance: string): string {
  return `jibe-state-${createHash('sha256').update(`${instance}\0${key}`).digest('hex').slice(0, 40)}`;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '' || !key.isWellFormed()) throw new JibeError('JIBE_ERR_BAD_REQUEST', `invalid state key ${JSON.stringify(key)}`, { field: 'key' });
}

function conflict(key: string, why: string): JibeError {
  return new JibeError('JIBE_ERR_CONFLICT', `state entry ${key} was not written: ${why}`, { hint: 'read it again and retry' });
}
