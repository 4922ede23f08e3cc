// The Kubernetes platform registry: reflectors on Services, EndpointSlices,
// Pods and Namespaces feed the pure converters. Changes are gathered per turn
// of the event loop, only the services and workloads they touch are converted
// again, and only what actually changed is emitted, so a slice update costs
// its own endpoints, not the cluster.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { PlatformRegistry, RegistryEvent } from '../../core/registry/platform-registry.ts';
import type { Service } from '../../core/model/service.ts';
import type { Workload } from '../../core/model/workload.ts';
import { namespaceWantsCaRoot } from './ca-root-configmap.ts';
import { endpointWorkloadName, PROXY_CONTAINER, SERVICE_NAME_LABEL, toService, toWorkload } from './kube-convert.ts';
import type { ConvertOptions, EndpointRef } from './kube-convert.ts';
import type { KubeClient } from './kube-client.ts';
import { KubeReflector } from './kube-reflector.ts';
import type { ReflectorChange, ReflectorOptions } from './kube-reflector.ts';
import { objectKey } from './kube-types.ts';
import type { KubeEndpointSlice, KubeNamespace, KubePod, KubeService } from './kube-types.ts';

/** A namespace with this label set to `disabled` is left out of the mesh (Istio's discovery selectors). */
export const DISCOVERY_LABEL = 'jibe.dev/discovery';

export interface KubernetesRegistryOptions extends ConvertOptions {
  logger?: Logger;
  reflector?: ReflectorOptions;
}

export class KubernetesRegistry implements PlatformRegistry {
  readonly platform = 'kubernetes' as const;
  private readonly client: KubeClient;
  private readonly options: KubernetesRegistryOptions;
  private readonly services: KubeReflector<KubeService>;
  private readonly slices: KubeReflector<KubeEndpointSlice>;
  private readonly pods: KubeReflector<KubePod>;
  private readonly namespaces: KubeReflector<KubeNamespace>;
  /** workload key (`ns/name`) → slice key → that slice's entries for it. */
  private readonly refsByWorkload = new Map<string, Map<string, EndpointRef[]>>();
  /** slice key → workload keys it names, to undo a slice's previous entries. */
  private readonly workloadsBySlice = new Map<string, Set<string>>();
  /** service key → slice keys, so a port change reaches its endpoints. */
  private readonly slicesByService = new Map<string, Set<string>>();
  private readonly emittedServices = new Map<string, Service>();
  private readonly emittedWorkloads = new Map<string, Workload>();
  private readonly dirtyServices = new Set<string>();
  private readonly dirtyWorkloads = new Set<string>();
  /** namespace → its pods that carry the sidecar: where the CA roots ConfigMap is needed besides labelled namespaces. */
  private readonly sidecarPods = new Map<string, Set<string>>();
  private readonly meshNamespaceListeners = new Set<(namespace: string) => void>();
  private listener: ((events: RegistryEvent[]) => void) | undefined;
  private flushScheduled = false;
  private synced = false;

  constructor(client: KubeClient, options: KubernetesRegistryOptions) {
    this.client = client;
    this.options = options;
    const reflectorOptions = { ...options.reflector, logger: options.logger };
    this.services = new KubeReflector(client, '/api/v1/services', (c) => this.onServices(c), reflectorOptions);
    this.slices = new KubeReflector(client, '/apis/discovery.k8s.io/v1/endpointslices', (c) => this.onSlices(c), reflectorOptions);
    this.pods = new KubeReflector(client, '/api/v1/pods', (c) => this.onPods(c), reflectorOptions);
    this.namespaces = new KubeReflector(client, '/api/v1/namespaces', (c) => this.onNamespaces(c), reflectorOptions);
  }

  async watch(listener: (events: RegistryEvent[]) => void): Promise<void> {
    this.listener = listener;
    // Namespaces and services first: slices and pods are converted against them.
    await Promise.all([this.namespaces.start(), this.services.start()]);
    await Promise.all([this.slices.start(), this.pods.start()]);
    this.dirtyServices.clear();
    this.dirtyWorkloads.clear();
    for (const key of this.services.cache.keys()) this.dirtyServices.add(key);
    for (const key of this.refsByWorkload.keys()) this.dirtyWorkloads.add(key);
    for (const key of this.pods.cache.keys()) this.dirtyWorkloads.add(key);
    this.computeDirty();
    this.synced = true;
    listener([{ kind: 'sync', services: [...this.emittedServices.values()], workloads: [...this.emittedWorkloads.values()] }]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.services.stop(), this.slices.stop(), this.pods.stop(), this.namespaces.stop()]);
    this.listener = undefined;
  }

  /**
   * A namespace's labels as last seen, or undefined when it is not in the
   * cache (not synced yet, or created a moment ago): the injection webhook
   * then asks the API server.
   */
  namespaceLabels(name: string): Record<string, string> | undefined {
    const ns = this.namespaces.cache.get(`/${name}`);
    return ns ? (ns.metadata.labels ?? {}) : undefined;
  }

  /**
   * Namespaces whose sidecars need the mesh roots: labelled for injection, or
   * holding pods with the sidecar (opted in one by one, or injected offline).
   */
  meshNamespaces(): string[] {
    const out = new Set<string>();
    for (const ns of this.namespaces.cache.values()) if (namespaceWantsCaRoot(ns)) out.add(ns.metadata.name);
    for (const ns of this.sidecarPods.keys()) if (this.isMeshNamespace(ns)) out.add(ns);
    return [...out].sort();
  }

  /** Called with a namespace that just became one of meshNamespaces() (at most a few times per namespace). */
  onMeshNamespace(listener: (namespace: string) => void): () => void {
    this.meshNamespaceListeners.add(listener);
    return () => this.meshNamespaceListeners.delete(listener);
  }

  /** Reflector counters, for status and for tests that restart the API server. */
  stats(): Record<string, { relists: number; watches: number; objects: number }> {
    const of = (r: KubeReflector<never>) => ({ relists: r.relists, watches: r.watches, objects: r.cache.size });
    return { services: of(this.services as never), endpointslices: of(this.slices as never), pods: of(this.pods as never), namespaces: of(this.namespaces as never) };
  }

  private onServices(changes: ReflectorChange<KubeService>[]): void {
    for (const c of changes) {
      const key = objectKey(c.object);
      this.dirtyServices.add(key);
      // A service's ports decide its endpoints' port bindings.
      for (const sliceKey of this.slicesByService.get(key) ?? []) for (const w of this.workloadsBySlice.get(sliceKey) ?? []) this.dirtyWorkloads.add(w);
    }
    this.schedule();
  }

  private onSlices(changes: ReflectorChange<KubeEndpointSlice>[]): void {
    for (const c of changes) {
      const slice = c.object;
      const sliceKey = objectKey(slice);
      const namespace = slice.metadata.namespace ?? 'default';
      for (const w of this.workloadsBySlice.get(sliceKey) ?? []) {
        this.dirtyWorkloads.add(w);
        const refs = this.refsByWorkload.get(w);
        refs?.delete(sliceKey);
        if (refs?.size === 0) this.refsByWorkload.delete(w);
      }
      this.workloadsBySlice.delete(sliceKey);
      const serviceName = (c.type === 'delete' ? slice : (c.old ?? slice)).metadata.labels?.[SERVICE_NAME_LABEL];
      if (serviceName) this.slicesByService.get(`${namespace}/${serviceName}`)?.delete(sliceKey);
      if (c.type === 'delete') continue;

      const owner = slice.metadata.labels?.[SERVICE_NAME_LABEL];
      if (owner) {
        const svcKey = `${namespace}/${owner}`;
        let set = this.slicesByService.get(svcKey);
        if (!set) this.slicesByService.set(svcKey, (set = new Set()));
        set.add(sliceKey);
      }
      const names = new Set<string>();
      for (const endpoint of slice.endpoints ?? []) {
        const name = endpointWorkloadName(slice, endpoint);
        if (!name) continue;
        const w = `${endpoint.targetRef?.namespace ?? namespace}/${name}`;
        names.add(w);
        let bySlice = this.refsByWorkload.get(w);
        if (!bySlice) this.refsByWorkload.set(w, (bySlice = new Map()));
        let refs = bySlice.get(sliceKey);
        if (!refs) bySlice.set(sliceKey, (refs = []));
        refs.push({ slice, endpoint });
        this.dirtyWorkloads.add(w);
      }
      this.workloadsBySlice.set(sliceKey, names);
    }
    this.schedule();
  }

  private onPods(changes: ReflectorChange<KubePod>[]): void {
    for (const c of changes) {
      this.dirtyWorkloads.add(objectKey(c.object));
      const ns = c.object.metadata.namespace ?? 'default';
      const before = this.isMeshNamespace(ns);
      let pods = this.sidecarPods.get(ns);
      if (c.type === 'upsert' && c.object.spec?.containers?.some((x) => x.name === PROXY_CONTAINER)) {
        if (!pods) this.sidecarPods.set(ns, (pods = new Set()));
        pods.add(c.object.metadata.name);
      } else if (pods?.delete(c.object.metadata.name) && pods.size === 0) {
        this.sidecarPods.delete(ns);
      }
      if (!before && this.isMeshNamespace(ns)) this.notifyMeshNamespace(ns);
    }
    this.schedule();
  }

  private onNamespaces(changes: ReflectorChange<KubeNamespace>[]): void {
    for (const c of changes) {
      const ns = c.object.metadata.name;
      // Labelled (or created labelled): its ConfigMap is due now, not at the leader's next round.
      if (c.type === 'upsert' && namespaceWantsCaRoot(c.object) && !(c.old && namespaceWantsCaRoot(c.old))) this.notifyMeshNamespace(ns);
      const before = c.type === 'upsert' && c.old ? isExcluded(c.old) : false;
      const after = c.type === 'upsert' ? isExcluded(c.object) : false;
      if (before === after && c.type === 'upsert' && c.old) continue;
      for (const key of this.services.cache.keys()) if (key.startsWith(`${ns}/`)) this.dirtyServices.add(key);
      for (const key of this.emittedServices.keys()) if (key.startsWith(`${ns}/`)) this.dirtyServices.add(key);
      for (const key of this.refsByWorkload.keys()) if (key.startsWith(`${ns}/`)) this.dirtyWorkloads.add(key);
      for (const key of this.pods.cache.keys()) if (key.startsWith(`${ns}/`)) this.dirtyWorkloads.add(key);
    }
    this.schedule();
  }

  private schedule(): void {
    if (!this.synced || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const events = this.computeDirty();
      if (events.length && this.listener) this.listener(events);
    });
  }

  private computeDirty(): RegistryEvent[] {
    const events: RegistryEvent[] = [];
    for (const key of this.dirtyServices) {
      const svc = this.services.cache.get(key);
      const next = svc && !this.excludedNamespace(svc.metadata.namespace) ? toService(svc, this.options) : undefined;
      const prev = this.emittedServices.get(key);
      if (next && (!prev || !isDeepStrictEqual(prev, next))) {
        this.emittedServices.set(key, next);
        events.push({ kind: 'service', op: 'upsert', service: next });
      } else if (!next && prev) {
        this.emittedServices.delete(key);
        events.push({ kind: 'service', op: 'delete', hostname: prev.hostname });
      }
    }
    this.dirtyServices.clear();
    const serviceOf = (ns: string, name: string) => this.services.cache.get(`${ns}/${name}`);
    for (const key of this.dirtyWorkloads) {
      const slash = key.indexOf('/');
      const namespace = key.slice(0, slash);
      const name = key.slice(slash + 1);
      const refs = [...(this.refsByWorkload.get(key)?.values() ?? [])].flat();
      const next = this.excludedNamespace(namespace) ? undefined : toWorkload(namespace, name, this.pods.cache.get(key), refs, serviceOf, this.options);
      const prev = this.emittedWorkloads.get(key);
      if (next && (!prev || !isDeepStrictEqual(prev, next))) {
        this.emittedWorkloads.set(key, next);
        events.push({ kind: 'workload', op: 'upsert', workload: next });
      } else if (!next && prev) {
        this.emittedWorkloads.delete(key);
        events.push({ kind: 'workload', op: 'delete', namespace, name });
      }
    }
    this.dirtyWorkloads.clear();
    return events;
  }

  private isMeshNamespace(namespace: string): boolean {
    const ns = this.namespaces.cache.get(`/${namespace}`);
    if (ns?.status?.phase === 'Terminating') return false;
    return (ns !== undefined && namespaceWantsCaRoot(ns)) || (this.sidecarPods.get(namespace)?.size ?? 0) > 0;
  }

  private notifyMeshNamespace(namespace: string): void {
    for (const listener of this.meshNamespaceListeners) {
      try {
        listener(namespace);
      } catch (err) {
        this.options.logger?.warn({ err: (err as Error).message, namespace }, 'mesh namespace listener failed');
      }
    }
  }

  private excludedNamespace(namespace: string | undefined): boolean {
    const ns = this.namespaces.cache.get(`/${namespace ?? 'default'}`);
    return ns ? isExcluded(ns) : false;
  }
}

function isExcluded(ns: KubeNamespace): boolean {
  return ns.metadata.labels?.[DISCOVERY_LABEL] === 'disabled';
}
