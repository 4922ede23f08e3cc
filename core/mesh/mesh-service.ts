// Keeps the mesh snapshot current: rules from the ConfigStore, services and
// workloads from the RegistryAggregator. Snapshots are rebuilt lazily (on the
// first read after a change), so a burst of changes costs one rebuild.
import type { ConfigStore } from '../config/config-store.ts';
import type { TlsCredential } from '../model/credential.ts';
import type { Resource } from '../model/resource.ts';
import type { MeshConfig } from '../model/mesh-config.ts';
import type { DestinationRule, Gateway, ServiceEntry, VirtualService, WorkloadEntry } from '../model/networking.ts';
import type { RateLimit } from '../model/rate-limit.ts';
import type { AuthorizationPolicy, PeerAuthentication, RequestAuthentication } from '../model/security.ts';
import type { ProxyNode, ProxyResource } from '../model/proxy-config.ts';
import type { RegistryAggregator } from '../registry/registry-aggregator.ts';
import { serviceEntriesToModel } from '../registry/service-entry-converter.ts';
import { compileServiceAliases } from '../registry/service-alias-rules.ts';
import type { AliasConflict } from '../registry/service-alias-rules.ts';
import type { ServiceAlias } from '../model/service-alias.ts';
import { compareByAge } from './mesh-match.ts';
import { indexWorkloads } from './mesh-snapshot.ts';
import type { MeshSettings, MeshSnapshot } from './mesh-snapshot.ts';
import { buildProxyConfig } from './proxy-config-builder.ts';

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

  constructor(store: ConfigStore, registry: RegistryAggregator, settings: MeshSettings) {
    this.store = store;
    this.registry = registry;
    this.settings = settings;
  }

  async start(): Promise<void> {
    // Watch first, then list, so no change can fall between the two.
    this.unwatch = this.store.watch(() => void this.reloadRules());
    await this.reloadRules();
    this.registry.onChange(() => this.changed());
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
    return buildProxyConfig(this.snapshot(), node);
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

  private changed(): void {
    this.current = undefined;
    for (const l of this.listeners) l();
  }

  private buildSnapshot(): MeshSnapshot {
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
