// What a control plane runs beside its core when the kubernetes platform is
// on: the admission webhook server (15017) on every replica, and, on the one
// replica holding the Lease, the work only one may do: publishing the CA
// bundle into the webhook configurations and the mesh roots into the
// `jibe-ca-root-cert` ConfigMap of every meshed namespace (again whenever the
// roots change, and at once when a namespace becomes meshed), rotating the CA
// root before it expires, and pruning expired bootstrap tokens. Every replica re-reads the roots periodically, so a rotation made
// by the leader reaches the others' webhook certificates and trust bundles.
import os from 'node:os';
import type { Logger } from 'pino';
import { pruneBootstrapTokens } from '../../core/ca/authenticator-bootstrap-token.ts';
import type { ControlPlaneAddonHost, StartedAddon } from '../../core/control-plane.ts';
import type { StateStore } from '../../core/state/state-store.ts';
import { AdmissionWebhookServer } from './admission-webhook-server.ts';
import { namespaceWantsCaRoot, publishCaRootToAll } from './ca-root-configmap.ts';
import { DEFAULT_INJECTION, INJECTION_LABEL } from './inject-pod.ts';
import type { InjectionOptions } from './inject-pod.ts';
import { kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import type { KubeNamespace } from './kube-types.ts';
import { LeaseLeaderElector } from './leader-election-lease.ts';
import { JIBE_WEBHOOK_CONFIGS, publishWebhookCaBundle } from './webhook-ca-bundle.ts';
import type { WebhookConfigRef } from './webhook-ca-bundle.ts';

/** The Service in front of the control plane replicas (deploy/kubernetes). */
export const CONTROL_PLANE_SERVICE = 'jibe-control-plane';
export const LEADER_LEASE = 'jibe-control-plane';
const DAY_MS = 24 * 3600_000;

export interface KubernetesAddonOptions {
  /** The control plane's own namespace: its Lease, and the Service name in the webhook certificate. */
  namespace: string;
  /** Webhook port; undefined = no webhook server (leader work still runs). */
  webhookPort?: number;
  /** Where the webhook server listens (default: the control plane's `--host`). */
  webhookHost?: string;
  /** This replica's name in the Lease (default: POD_NAME, else the host name). */
  identity?: string;
  injection?: Partial<InjectionOptions>;
  webhookConfigs?: WebhookConfigRef[];
  /** How often the leader does its periodic work and every replica re-reads the CA roots. */
  maintenanceIntervalMs?: number;
  /** Rotate the root when it has less than this left (default: 4 workload certificate lifetimes, at least 30 days). */
  rotateRootBeforeMs?: number;
  lease?: { durationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
}

export interface KubernetesAddonDeps {
  client: KubeClient;
  state: StateStore | undefined;
  /** Cached namespace labels (the registry's reflector), undefined when not cached. */
  cachedNamespaceLabels?: (name: string) => Record<string, string> | undefined;
  /** Namespaces that need the CA roots ConfigMap (the registry's caches); undefined = list labelled namespaces from the API. */
  meshNamespaces?: () => string[];
  /** Tells when a namespace becomes meshed, so its ConfigMap need not wait for the next round. */
  onMeshNamespace?: (listener: (namespace: string) => void) => () => void;
}

export class KubernetesControlPlaneAddon {
  private readonly deps: KubernetesAddonDeps;
  private readonly options: KubernetesAddonOptions;

  constructor(deps: KubernetesAddonDeps, options: KubernetesAddonOptions) {
    this.deps = deps;
    this.options = options;
  }

  async startAddon(host: ControlPlaneAddonHost): Promise<StartedAddon & { elector: LeaseLeaderElector; webhook?: AdmissionWebhookServer }> {
    const { client } = this.deps;
    const { ca, mesh, configStore, settings } = host;
    const logger = host.logger.child({ component: 'kubernetes' });
    const namespace = this.options.namespace;
    const closers: Array<() => Promise<void> | void> = [];
    const close = async () => {
      for (const c of closers.reverse()) await c();
    };
    const ports: Record<string, number> = {};
    let webhook: AdmissionWebhookServer | undefined;
    try {
      if (this.options.webhookPort !== undefined) {
        const listenHost = this.options.webhookHost ?? host.host;
        webhook = new AdmissionWebhookServer({
          ca,
          spiffeId: `spiffe://${settings.trustDomain}/ns/${namespace}/sa/${CONTROL_PLANE_SERVICE}`,
          serverNames: webhookServerNames(namespace, listenHost),
          injection: { ...DEFAULT_INJECTION, discoveryAddress: `${CONTROL_PLANE_SERVICE}.${namespace}.svc:15012`, apiAddress: `https://${CONTROL_PLANE_SERVICE}.${namespace}.svc:15015`, ...this.options.injection },
          namespaceLabels: (ns) => this.namespaceLabels(ns),
          rules: () => configStore.list(),
          knownHosts: () => mesh.knownHosts(),
          logger,
        });
        const started = webhook;
        ports.webhook = await started.listen(listenHost, this.options.webhookPort);
        closers.push(() => started.close());
      }

      const interval = this.options.maintenanceIntervalMs ?? 60_000;
      let leaderWork: Promise<void> = Promise.resolve();
      const runLeaderWork = (why: string) => {
        leaderWork = leaderWork.then(() => this.leaderWork(host, elector, logger, why)).catch((err: Error) => logger.warn({ err: err.message, why }, 'leader work failed; retried next round'));
      };
      const publishRoots = (namespace: string) => {
        leaderWork = leaderWork.then(() => this.publishCaRoots(host, elector, logger, [namespace], 'namespace meshed')).catch((err: Error) => logger.warn({ err: err.message, namespace }, 'publishing the CA roots failed; retried next round'));
      };
      const elector = new LeaseLeaderElector(client, {
        namespace,
        name: LEADER_LEASE,
        identity: this.options.identity ?? process.env.POD_NAME ?? os.hostname(),
        // Only what is set: an undefined here would override the elector's defaults.
        ...definedOnly({ leaseDurationMs: this.options.lease?.durationMs, renewDeadlineMs: this.options.lease?.renewDeadlineMs, retryPeriodMs: this.options.lease?.retryPeriodMs }),
        onStartedLeading: () => runLeaderWork('elected'),
        logger,
      });
      elector.start();
      closers.push(() => elector.stop());
      closers.push(() => leaderWork);

      // Roots changed (rotated here, or found by refresh): the webhook server renews itself; the leader republishes.
      const unsubscribe = ca.onChange(() => {
        if (elector.isLeader) runLeaderWork('roots changed');
      });
      closers.push(unsubscribe);
      const unsubscribeNamespaces = this.deps.onMeshNamespace?.((ns) => {
        if (elector.isLeader) publishRoots(ns);
      });
      if (unsubscribeNamespaces) closers.push(unsubscribeNamespaces);

      const timer = setInterval(() => {
        ca.refresh().catch((err: Error) => logger.warn({ err: err.message }, 're-reading the CA roots failed'));
        if (elector.isLeader) runLeaderWork('periodic');
      }, interval);
      timer.unref();
      closers.push(() => clearInterval(timer));

      return { ports, close, elector, webhook };
    } catch (err) {
      await close();
      throw err;
    }
  }

  private async leaderWork(host: ControlPlaneAddonHost, elector: LeaseLeaderElector, logger: Logger, why: string): Promise<void> {
    if (!elector.isLeader) return;
    const { ca } = host;
    if (ca.mode === 'generated') {
      const before = this.options.rotateRootBeforeMs ?? Math.max(30 * DAY_MS, 4 * ca.workloadTtlMs);
      if (ca.signerExpiresAt.getTime() - Date.now() < before) {
        logger.info({ notAfter: ca.signerExpiresAt.toISOString() }, 'the CA root expires soon; rotating it');
        // The old root stays trusted for two certificate lifetimes: every workload renews at half-life.
        await ca.rotateRoot({ overlapMs: 2 * ca.workloadTtlMs });
      }
    }
    if (!elector.isLeader) return;
    const result = await publishWebhookCaBundle(this.deps.client, ca.trustBundle().join(''), this.options.webhookConfigs ?? JIBE_WEBHOOK_CONFIGS);
    if (result.patched.length) logger.info({ patched: result.patched, why }, 'published the CA bundle to the webhook configurations');
    if (result.missing.length && why === 'elected') logger.warn({ missing: result.missing }, 'webhook configurations not installed; run jibe install');
    await this.publishCaRoots(host, elector, logger, await this.caRootNamespaces(), why);
    if (this.deps.state) {
      const pruned = await pruneBootstrapTokens(this.deps.state);
      if (pruned) logger.info({ pruned }, 'pruned expired bootstrap tokens');
    }
  }

  /** Writes the roots in force (both during a rotation's overlap) into each namespace's `jibe-ca-root-cert`. */
  private async publishCaRoots(host: ControlPlaneAddonHost, elector: LeaseLeaderElector, logger: Logger, namespaces: string[], why: string): Promise<void> {
    if (!elector.isLeader || namespaces.length === 0) return;
    const result = await publishCaRootToAll(this.deps.client, namespaces, host.ca.trustBundle());
    if (result.created.length || result.updated.length) logger.info({ created: result.created, updated: result.updated, why }, 'published the CA roots ConfigMap');
    if (result.failed.size) logger.warn({ failed: Object.fromEntries(result.failed), why }, 'could not publish the CA roots ConfigMap; retried next round');
  }

  private async caRootNamespaces(): Promise<string[]> {
    if (this.deps.meshNamespaces) return this.deps.meshNamespaces();
    const { items } = await this.deps.client.list<KubeNamespace>(kubePath('v1', 'namespaces'), { labelSelector: `${INJECTION_LABEL}=enabled` });
    return items.filter(namespaceWantsCaRoot).map((ns) => ns.metadata.name);
  }

  private async namespaceLabels(name: string): Promise<Record<string, string> | undefined> {
    const cached = this.deps.cachedNamespaceLabels?.(name);
    if (cached) return cached;
    const ns = await this.deps.client.get<KubeNamespace>(kubePath('v1', 'namespaces', undefined, name));
    return ns ? (ns.metadata.labels ?? {}) : undefined;
  }
}

/**
 * Names the API server may dial the webhook by: the Service's DNS names, and
 * the listen address itself when it is a specific IP (a `url:` clientConfig).
 */
export function webhookServerNames(namespace: string, listenHost: string): { dnsNames: string[]; ipAddresses: string[] } {
  const svc = `${CONTROL_PLANE_SERVICE}.${namespace}`;
  const specific = listenHost !== '0.0.0.0' && listenHost !== '::' && /^[\d.]+$|:/.test(listenHost);
  return {
    dnsNames: [`${svc}.svc`, `${svc}.svc.cluster.local`],
    ipAddresses: specific ? [listenHost] : [],
  };
}

function definedOnly<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
