// Rules as custom resources. Reads Jibe's groups and, when their CRDs exist,
// Istio's; writes to Jibe's group (or Istio's, when the rule says Istio and its
// CRDs are installed). The apiVersion a rule was written with is kept in an
// annotation, so reading returns what was applied. The cache is filled by
// reflectors, so list() costs no API call and watch() sees every change,
// including those made with kubectl.
//
// Kubernetes has no multi-object transaction: a batch is checked first
// (compare-and-set versions against the API), then written one object at a
// time with optimistic concurrency, and on a failure midway the objects
// already written are put back as they were, so a failed apply leaves nothing.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { ApplyOptions, ConfigEvent, ConfigStore, ResourceRef } from '../../core/config/config-store.ts';
import { JibeError } from '../../core/errors/errors.ts';
import { DEFAULT_NAMESPACE, kindByName, resourceKey } from '../../core/model/resource.ts';
import type { Resource } from '../../core/model/resource.ts';
import { KubeApiError, kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import { ruleResourceTypes } from './kube-crds.ts';
import type { RuleResourceType } from './kube-crds.ts';
import { KubeReflector } from './kube-reflector.ts';
import type { ReflectorChange, ReflectorOptions } from './kube-reflector.ts';
import type { KubeObject } from './kube-types.ts';

export const API_VERSION_ANNOTATION = 'jibe.dev/api-version';

interface RuleObject extends KubeObject {
  spec?: unknown;
  metadata: KubeObject['metadata'] & { creationTimestamp?: string };
}

export interface KubernetesConfigStoreOptions {
  logger?: Logger;
  reflector?: ReflectorOptions;
}

export class KubernetesConfigStore implements ConfigStore {
  private readonly client: KubeClient;
  private readonly types: RuleResourceType[];
  private readonly reflectors: KubeReflector<RuleObject>[] = [];
  private readonly listeners = new Set<(events: ConfigEvent[]) => void>();
  private closed = false;

  private constructor(client: KubeClient, types: RuleResourceType[]) {
    this.client = client;
    this.types = types;
  }

  /** Opens the store: finds which rule CRDs the cluster serves and lists them all. */
  static async open(client: KubeClient, options: KubernetesConfigStoreOptions = {}): Promise<KubernetesConfigStore> {
    const served = await servedTypes(client);
    const missing = ruleResourceTypes().filter((t) => t.group.endsWith('jibe.dev') && !served.some((s) => s.group === t.group && s.plural === t.plural));
    if (missing.length) {
      throw new JibeError('JIBE_ERR_KUBERNETES', `the cluster does not serve Jibe's rule kinds ${missing.map((t) => `${t.plural}.${t.group}`).join(', ')}`, {
        hint: 'install the CRDs: jibe install (or kubectl apply -f deploy/kubernetes/)',
      });
    }
    const store = new KubernetesConfigStore(client, served);
    for (const type of served) {
      const reflector = new KubeReflector<RuleObject>(client, kubePath(`${type.group}/${type.version}`, type.plural), (c) => store.emit(c), { ...options.reflector, logger: options.logger });
      store.reflectors.push(reflector);
    }
    await Promise.all(store.reflectors.map((r) => r.start()));
    return store;
  }

  async list(kind?: string): Promise<Resource[]> {
    this.assertOpen();
    const wanted = kind ? (kindByName(kind)?.kind ?? kind) : undefined;
    const byKey = new Map<string, Resource>();
    // Jibe's groups come first in `types`: on a name clash with an Istio object, Jibe's wins.
    this.reflectors.forEach((reflector, i) => {
      if (wanted && this.types[i].kind !== wanted) return;
      for (const obj of reflector.cache.values()) {
        const r = toResource(obj, this.types[i]);
        const key = resourceKey(r);
        if (!byKey.has(key)) byKey.set(key, r);
      }
    });
    return [...byKey.values()].sort((a, b) => compare(resourceKey(a), resourceKey(b)));
  }

  async apply(resources: Resource[], options: ApplyOptions = {}): Promise<Resource[]> {
    this.assertOpen();
    const plans = resources.map((r) => ({ resource: r, type: this.typeFor(r) }));
    // Read the live objects first: versions are checked against the API, not the cache.
    const live = await Promise.all(plans.map((p) => this.client.get<RuleObject>(this.objectPath(p.type, p.resource))));
    if (options.checkVersions) {
      plans.forEach((p, i) => {
        const want = p.resource.metadata.resourceVersion;
        if (want !== undefined && live[i]?.metadata.resourceVersion !== want) throw conflict(p.resource, live[i]?.metadata.resourceVersion);
      });
    }
    const written: Array<{ type: RuleResourceType; before: RuleObject | undefined; after: RuleObject }> = [];
    const results: Resource[] = [];
    try {
      for (const [i, p] of plans.entries()) {
        const before = live[i];
        const body = toObject(p.resource, p.type, before);
        if (before && sameContent(before, body)) {
          results.push(toResource(before, p.type));
          continue;
        }
        const after = before
          ? await this.client.request<RuleObject>('PUT', this.objectPath(p.type, p.resource), { body })
          : await this.client.request<RuleObject>('POST', kubePath(`${p.type.group}/${p.type.version}`, p.type.plural, namespaceOf(p.resource)), { body });
        written.push({ type: p.type, before, after });
        results.push(toResource(after, p.type));
      }
    } catch (err) {
      await this.rollBack(written);
      if (err instanceof KubeApiError && err.status === 409) throw new JibeError('JIBE_ERR_CONFLICT', `${err.message}; nothing was applied`, { hint: 'read the rules again and retry' });
      throw err;
    }
    await this.caughtUp(written.map((w) => w.after));
    return results;
  }

  async delete(refs: ResourceRef[]): Promise<Resource[]> {
    this.assertOpen();
    const current = await this.list();
    const targets: Array<{ resource: Resource; type: RuleResourceType; object: RuleObject }> = [];
    for (const ref of refs) {
      const kind = kindByName(ref.kind)?.kind ?? ref.kind;
      const key = `${kind}/${ref.namespace || DEFAULT_NAMESPACE}/${ref.name}`;
      const resource = current.find((r) => resourceKey(r) === key);
      const type = resource && this.locate(resource);
      if (!resource || !type) throw new JibeError('JIBE_ERR_NOT_FOUND', `${key} does not exist`, { resource: key, hint: 'check kind, namespace and name with jibe get' });
      targets.push({ resource, type: type.type, object: type.object });
    }
    const deleted: typeof targets = [];
    try {
      for (const t of targets) {
        await this.client.request('DELETE', this.objectPath(t.type, t.resource), { body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion: t.object.metadata.resourceVersion } } });
        deleted.push(t);
      }
    } catch (err) {
      // Recreate what this call already deleted, so a failed batch deletes nothing.
      for (const d of deleted.reverse()) {
        const { resourceVersion: _rv, uid: _uid, ...metadata } = d.object.metadata;
        await this.client.request('POST', kubePath(`${d.type.group}/${d.type.version}`, d.type.plural, namespaceOf(d.resource)), { body: { ...d.object, metadata } }).catch(() => undefined);
      }
      throw err;
    }
    await this.caughtUpDeleted(targets.map((t) => ({ type: t.type, key: `${namespaceOf(t.resource)}/${t.resource.metadata.name}` })));
    return targets.map((t) => t.resource);
  }

  watch(listener: (events: ConfigEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }

  private emit(changes: ReflectorChange<RuleObject>[]): void {
    if (!this.listeners.size) return;
    const events: ConfigEvent[] = [];
    for (const c of changes) {
      const type = this.typeOfObject(c.object);
      if (!type) continue;
      events.push({ type: c.type, resource: toResource(c.object, type) });
    }
    if (!events.length) return;
    for (const l of [...this.listeners]) {
      try {
        l(structuredClone(events));
      } catch (err) {
        process.emitWarning(`a config store listener threw: ${(err as Error).message}`);
      }
    }
  }

  /** Waits until the watch has delivered our own writes, so list() right after apply() sees them. */
  private async caughtUp(objects: RuleObject[]): Promise<void> {
    for (let i = 0; i < 500; i++) {
      const pending = objects.filter((o) => {
        const reflector = this.reflectorFor(o);
        const cached = reflector?.cache.get(`${o.metadata.namespace ?? ''}/${o.metadata.name}`);
        return !cached || Number(cached.metadata.resourceVersion) < Number(o.metadata.resourceVersion);
      });
      if (!pending.length) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async caughtUpDeleted(items: Array<{ type: RuleResourceType; key: string }>): Promise<void> {
    for (let i = 0; i < 500; i++) {
      if (items.every((it) => !this.reflectors[this.types.indexOf(it.type)]?.cache.has(it.key))) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async rollBack(written: Array<{ type: RuleResourceType; before: RuleObject | undefined; after: RuleObject }>): Promise<void> {
    for (const w of written.reverse()) {
      const path = kubePath(`${w.type.group}/${w.type.version}`, w.type.plural, w.after.metadata.namespace, w.after.metadata.name);
      if (!w.before) await this.client.request('DELETE', path).catch(() => undefined);
      else await this.client.request('PUT', path, { body: { ...w.before, metadata: { ...w.before.metadata, resourceVersion: w.after.metadata.resourceVersion } } }).catch(() => undefined);
    }
  }

  /** The CRD a rule is written to: its own group when served, else Jibe's group of that kind. */
  private typeFor(r: Resource): RuleResourceType {
    const kind = kindByName(r.kind)?.kind ?? r.kind;
    const group = String(r.apiVersion ?? '').split('/')[0];
    const exact = this.types.find((t) => t.kind === kind && t.group === group);
    const jibe = this.types.find((t) => t.kind === kind && t.group.endsWith('jibe.dev'));
    const type = exact ?? jibe;
    if (!type) throw new JibeError('JIBE_ERR_UNKNOWN_KIND', `the cluster serves no CRD for ${kind}`, { resource: resourceKey(r), hint: 'install the CRDs: jibe install' });
    return type;
  }

  private locate(r: Resource): { type: RuleResourceType; object: RuleObject } | undefined {
    for (const [i, reflector] of this.reflectors.entries()) {
      if (this.types[i].kind !== r.kind) continue;
      const object = reflector.cache.get(`${namespaceOf(r)}/${r.metadata.name}`);
      if (object) return { type: this.types[i], object };
    }
    return undefined;
  }

  private typeOfObject(o: RuleObject): RuleResourceType | undefined {
    const group = String(o.apiVersion ?? '').split('/')[0];
    return this.types.find((t) => t.kind === o.kind && t.group === group);
  }

  private reflectorFor(o: RuleObject): KubeReflector<RuleObject> | undefined {
    const type = this.typeOfObject(o);
    return type ? this.reflectors[this.types.indexOf(type)] : undefined;
  }

  private objectPath(type: RuleResourceType, r: Resource): string {
    return kubePath(`${type.group}/${type.version}`, type.plural, namespaceOf(r), r.metadata.name);
  }

  private assertOpen(): void {
    if (this.closed) throw new JibeError('JIBE_ERR_KUBERNETES', 'the Kubernetes config store is closed');
  }
}

/** Rule CRDs the API server serves now (Istio's only if installed). */
export async function servedTypes(client: KubeClient): Promise<RuleResourceType[]> {
  const groups = await client.request<{ groups?: Array<{ name: string; versions: Array<{ version: string }> }> }>('GET', '/apis');
  const out: RuleResourceType[] = [];
  for (const type of ruleResourceTypes()) {
    const group = groups.groups?.find((g) => g.name === type.group);
    if (!group) continue;
    const version = group.versions.some((v) => v.version === type.version) ? type.version : undefined;
    if (!version) continue;
    const resources = await client.get<{ resources?: Array<{ name: string }> }>(`/apis/${type.group}/${version}`);
    if (resources?.resources?.some((r) => r.name === type.plural)) out.push({ ...type, version });
  }
  return out;
}

function namespaceOf(r: Resource): string {
  return r.metadata.namespace || DEFAULT_NAMESPACE;
}

function toObject(r: Resource, type: RuleResourceType, live: RuleObject | undefined): RuleObject {
  const annotations = { ...(r.metadata.annotations ?? {}), [API_VERSION_ANNOTATION]: r.apiVersion };
  const metadata: RuleObject['metadata'] = { name: r.metadata.name, namespace: namespaceOf(r), annotations };
  if (r.metadata.labels) metadata.labels = { ...r.metadata.labels };
  if (live) metadata.resourceVersion = live.metadata.resourceVersion;
  return { apiVersion: `${type.group}/${type.version}`, kind: type.kind, metadata, spec: structuredClone(r.spec) };
}

function toResource(o: RuleObject, type: RuleResourceType): Resource {
  const annotations = { ...(o.metadata.annotations ?? {}) };
  const apiVersion = annotations[API_VERSION_ANNOTATION] ?? `${type.group}/${type.version}`;
  delete annotations[API_VERSION_ANNOTATION];
  delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  const metadata: Resource['metadata'] = { name: o.metadata.name, namespace: o.metadata.namespace };
  if (o.metadata.labels) metadata.labels = { ...o.metadata.labels };
  if (Object.keys(annotations).length) metadata.annotations = annotations;
  metadata.resourceVersion = o.metadata.resourceVersion;
  metadata.creationTimestamp = o.metadata.creationTimestamp;
  return { apiVersion, kind: type.kind, metadata, spec: structuredClone(o.spec) };
}

function sameContent(live: RuleObject, next: RuleObject): boolean {
  return isDeepStrictEqual(live.spec, next.spec) && isDeepStrictEqual(live.metadata.labels ?? {}, next.metadata.labels ?? {}) && isDeepStrictEqual(live.metadata.annotations ?? {}, next.metadata.annotations ?? {});
}

function conflict(r: Resource, actual: string | undefined): JibeError {
  return new JibeError('JIBE_ERR_CONFLICT', `${resourceKey(r)} changed since it was read (version ${r.metadata.resourceVersion}, now ${actual ?? 'deleted'}); nothing was applied`, {
    resource: resourceKey(r),
    hint: 'read it again and reapply',
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
