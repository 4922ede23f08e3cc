// Keeps the mesh snapshot current: rules from the ConfigStore, services and
// workloads from the RegistryAggregator. Snapshots are rebuilt lazily (on the
// first read after a change), so a burst of changes costs one rebuild. A
// change that only flipped workloads' health derives the next snapshot from
// the previous one and lets each proxy's config be patched (proxy-config-cache.ts)
// instead of rebuilt: at 1,000 services that is what keeps a health change
// under a second to every proxy.
import type { ConfigStore } from '../config/config-store.ts';
import type { TlsCredential } from '../model/credential.ts';
import type { Resource } from '../model/resource.ts';
import type { MeshConfig } from '../model/mesh-config.ts';
import type { DestinationRule, Gateway, ServiceEntry, VirtualService, WorkloadEntry } from '../model/networking.ts';
import type { RateLimit } from '../model/rate-limit.ts';
import type { AuthorizationPolicy, PeerAuthentication, RequestAuthentication } from '../model/security.ts';
import type { ProxyNode, ProxyResource } from '../model/proxy-config.ts';
import type { RegistryAggregator, RegistryChange } from '../registry/registry-aggregator.ts';
import { serviceEntriesToModel } from '../registry/service-entry-converter.ts';
import { compileServiceAliases } from '../registry/service-alias-rules.ts';
import type { AliasConflict } from '../registry/service-alias-rules.ts';
import type { ServiceAlias } from '../model/service-alias.ts';
import { compareByAge } from './mesh-match.ts';
import { indexWorkloads } from './mesh-snapshot.ts';
import type { MeshSettings, MeshSnapshot } from './mesh-snapshot.ts';
import { buildProxyConfig } from './proxy-config-builder.ts';
import { inheritSnapshotIndex } from './build-context.ts';
import { ProxyConfigCache } from './proxy-config-cache.ts';
import type { Workload } from '../model/workload.ts';

export interface MeshServiceOptions {
  /**
   * Patch proxies' configs when only workload health changed (default true);
   * false rebuilds every proxy's whole config on every change.
   */
  incrementalBuilds?: boolean;
}

/** How many snapshot versions of change records are kept; a proxy further behind gets a full build. */
const CHANGE_HISTORY = 256;

export class MeshService {
  private readonly store: ConfigStore;
  private readonly registry: RegistryAggregator;
  private readonly settings: MeshSettings;
  private readonly listeners = new Set<() => void>();
  private rules: Resource[] = [];
  private current: MeshSnapshot | undefined;
  private snapshotCount = 0;
  private unwatch: (() => void) | undefined;
  private trustBundle: readonly string[] | undefined;
  private aliasConflicts: AliasConflict[] = [];
  private credentials: ReadonlyMap<string, TlsCredential> | undefined;
  private credentialSignature = '';
  private readonly incremental: boolean;
  private readonly configs = new ProxyConfigCache();
  /** The last snapshot built (kept after a change, to derive the next from). */
  private previous: MeshSnapshot | undefined;
  /** Health-only workload changes since `previous`; undefined once anything else changed. */
  private pendingEndpoints: Array<{ before: Workload; after: Workload }> | undefined;
  /** Per snapshot version: the hosts whose workloads changed only in health since the version before (undefined = anything). */
  private readonly changes = new Map<number, ReadonlySet<string> | undefined>();

  constructor(store: ConfigStore, registry: RegistryAggregator, settings: MeshSettings, options: MeshServiceOptions = {}) {
    this.store = store;
    this.registry = registry;
    this.settings = settings;
    this.incremental = options.incrementalBuilds ?? true;
  }

  async start(): Promise<void> {
    // Watch first, then list, so no change can fall between the two.
    this.unwatch = this.store.watch(() => void this.reloadRules());
    await this.reloadRules();
    this.registry.onChange((change) => this.changed(change));
  }

  stop(): void {
    this.unwatch?.();
  }

  snapshot(): MeshSnapshot {
    if (!this.current) this.current = this.buildSnapshot();
    return this.current;
  }

  // The three methods below make MeshService the discovery server's ConfigSource.

  version(): string {
    return String(this.snapshot().version);
  }

  build(node: ProxyNode): ProxyResource[] {
    const snapshot = this.snapshot();
    if (!this.incremental) return buildProxyConfig(snapshot, node);
    return this.configs.build(snapshot, node, this.changedHostsSince);
  }

  /** The proxy's stream ended: its cached config is not needed any more. */
  release(node: ProxyNode): void {
    this.configs.forget(node.id);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The CA's current roots; a changed bundle is a change of every proxy's `mesh` resource (pushed at once). */
  setTrustBundle(bundle: readonly string[]): void {
    const same = this.trustBundle !== undefined && this.trustBundle.length === bundle.length && this.trustBundle.every((pem, i) => pem === bundle[i]);
    if (same) return;
    this.trustBundle = [...bundle];
    this.changed();
  }

  /**
   * The operators' TLS credentials (Gateway `credentialName`), replaced whole;
   * `signature` (the store versions) tells an unchanged set, which costs no push.
   */
  setCredentials(credentials: ReadonlyMap<string, TlsCredential>, signature: string): void {
    if (signature === this.credentialSignature) return;
    this.credentialSignature = signature;
    this.credentials = credentials;
    this.changed();
  }

  /** Host names a rule may route to: every registry service plus ServiceEntry hosts. */
  knownHosts(): Set<string> {
    return new Set(this.snapshot().services.keys());
  }

  /** The rules as last read from the store (every kind). */
  resources(): readonly Resource[] {
    return this.rules;
  }

  /** ServiceAliases that claim one platform service for two hosts (the oldest wins), for `jibe analyze`. */
  serviceAliasConflicts(): readonly AliasConflict[] {
    return this.aliasConflicts;
  }

  private async reloadRules(): Promise<void> {
    this.rules = await this.store.list();
    const aliases = compileServiceAliases(this.rules.filter((r): r is ServiceAlias => r.kind === 'ServiceAlias'), this.settings.domain);
    this.aliasConflicts = aliases.conflicts;
    this.registry.setAliases(aliases.rules);
    const serviceEntries = this.rules.filter((r): r is ServiceEntry => r.kind === 'ServiceEntry');
    const workloadEntries = this.rules.filter((r): r is WorkloadEntry => r.kind === 'WorkloadEntry');
    const derived = serviceEntriesToModel(serviceEntries, workloadEntries, this.settings);
    // ServiceEntries are a registry like any platform: they merge by host name.
    this.registry.apply('config', [{ kind: 'sync', services: derived.services, workloads: derived.workloads }]);
  }

  private changed(change: RegistryChange = {}): void {
    if (change.endpoints && this.pendingEndpoints !== undefined) this.pendingEndpoints.push(...change.endpoints);
    else this.pendingEndpoints = undefined;
    this.current = undefined;
    for (const l of this.listeners) l();
  }

  private readonly changedHostsSince = (since: number): ReadonlySet<string> | undefined => {
    const now = this.snapshotCount;
    if (now - since > CHANGE_HISTORY) return undefined;
    const hosts = new Set<string>();
    for (let v = since + 1; v <= now; v++) {
      const changed = this.changes.get(v);
      if (changed === undefined) return undefined;
      for (const h of changed) hosts.add(h);
    }
    return hosts;
  };

  private buildSnapshot(): MeshSnapshot {
    const previous = this.previous;
    const pending = this.pendingEndpoints;
    this.pendingEndpoints = [];
    const derived = previous !== undefined && pending !== undefined ? this.deriveSnapshot(previous, pending) : undefined;
    const snapshot = derived?.snapshot ?? this.buildFullSnapshot();
    this.changes.set(snapshot.version, derived?.hosts);
    this.changes.delete(snapshot.version - CHANGE_HISTORY - 1);
    this.previous = snapshot;
    return snapshot;
  }

  /**
   * The next snapshot when only workloads' health changed: the same rules and
   * services, the workload index patched for the hosts touched. Undefined when
   * the registry's view does not line up with the change records (then a full build).
   */
  private deriveSnapshot(previous: MeshSnapshot, pairs: ReadonlyArray<{ before: Workload; after: Workload }>): { snapshot: MeshSnapshot; hosts: Set<string> } | undefined {
    if (this.registry.services() !== previous.services) return undefined;
    const index = new Map(previous.workloadsByService);
    const hosts = new Set<string>();
    for (const { before, after } of pairs) {
      for (const binding of after.services) {
        const list = index.get(binding.hostname);
        const at = list?.indexOf(before) ?? -1;
        if (list === undefined || at === -1) return undefined;
        const patched = list.slice();
        patched[at] = after;
        index.set(binding.hostname, patched);
        hosts.add(binding.hostname);
      }
    }
    const snapshot: MeshSnapshot = { ...previous, version: ++this.snapshotCount, workloads: this.registry.workloads(), workloadsByService: index };
    inheritSnapshotIndex(previous, snapshot);
    return { snapshot, hosts };
  }

  private buildFullSnapshot(): MeshSnapshot {
    const workloads = this.registry.workloads();
    const of = <T extends Resource>(kind: string) => this.rules.filter((r) => r.kind === kind) as T[];
    return {
      version: ++this.snapshotCount,
      settings: this.settings,
      services: this.registry.services(),
      workloads,
      workloadsByService: indexWorkloads(workloads),
      virtualServices: of<VirtualService>('VirtualService'),
      destinationRules: of<DestinationRule>('DestinationRule'),
      gateways: of<Gateway>('Gateway'),
      peerAuthentications: of<PeerAuthentication>('PeerAuthentication'),
      authorizationPolicies: of<AuthorizationPolicy>('AuthorizationPolicy'),
      requestAuthentications: of<RequestAuthentication>('RequestAuthentication'),
      rateLimits: of<RateLimit>('RateLimit'),
      // Validation keeps one; should two ever be stored, the oldest decides, as for other conflicts.
      meshConfig: of<MeshConfig>('MeshConfig').filter((m) => m.metadata.namespace === this.settings.rootNamespace).sort(compareByAge)[0],
      ...(this.trustBundle !== undefined ? { trustBundle: this.trustBundle } : {}),
      ...(this.credentials !== undefined ? { credentials: this.credentials } : {}),
    };
  }
}
