// The control plane: stores, registries, the mesh snapshot, the discovery
// server and the HTTP API, assembled from the plugins chosen by name.
import os from 'node:os';
import type { DependencyContainer } from 'tsyringe';
import type { Logger } from 'pino';
import { analyzeRoute } from './analyze/analyze-route.ts';
import { loadOrCreateAdminToken } from './api/admin-token.ts';
import { ApiServer } from './api/api-server.ts';
import { requireAdmin } from './api/api-certificates.ts';
import { TlsCredentials } from './api/api-credentials.ts';
import { isApiExtension } from './api/api-routes.ts';
import type { ApiExtension, ApiExtensionHost } from './api/api-routes.ts';
import { certificateSha256 } from './ca/ca-signer.ts';
import { CertificateAuthority } from './ca/certificate-authority.ts';
import { CsrSigningService } from './ca/csr-signing-service.ts';
import { ConfigService } from './config/config-service.ts';
import type { ConfigStore } from './config/config-store.ts';
import { MultiConfigStore } from './config/config-store-multi.ts';
import type { NamedConfigStore } from './config/config-store-multi.ts';
import { DiscoveryServer } from './discovery/discovery-server.ts';
import { ControlPlaneIdentity, controlPlaneSpiffeId, nodeIdentityProblem } from './discovery/discovery-tls.ts';
import { JibeError } from './errors/errors.ts';
import { MeshService } from './mesh/mesh-service.ts';
import type { MeshSettings } from './mesh/mesh-snapshot.ts';
import { AUTHENTICATOR, CONFIG_STORE, PLATFORM_REGISTRY, STATE_STORE, pluginNamed, pluginsOf } from './plugins/plugin-tokens.ts';
import type { PluginContext } from './plugins/plugin-tokens.ts';
import { RegistryAggregator } from './registry/registry-aggregator.ts';
import type { WorkloadRegistrar } from './registry/workload-registrar.ts';
import type { StateStore } from './state/state-store.ts';
import { ControlPlaneMetrics } from './telemetry/control-plane-metrics.ts';

export interface ControlPlaneOptions {
  container: DependencyContainer;
  dataDir: string;
  settings: MeshSettings;
  host: string;
  discoveryPort: number;
  /** Discovery over TLS with client certificates (15012); undefined = not served. */
  discoveryTlsPort?: number;
  apiPort: number;
  /** The API over TLS for VMs (15015): certificates, trust bundle, VM join and registration; undefined = not served. */
  apiTlsPort?: number;
  /** Where the TLS API listens (default: `host`). */
  apiTlsHost?: string;
  /**
   * Where discovery over TLS listens. Default: `apiTlsHost` when the TLS API is served, else `host` — a VM's sidecar subscribes on the
   * address its agent reaches the TLS API at (like istiod's 15012, it authenticates every peer by certificate).
   */
  discoveryTlsHost?: string;
  /** Host names or IPs (optionally `:port`) VMs reach the TLS API at, written into join tokens. Default: derived from apiTlsHost. */
  advertiseAddresses?: string[];
  /**
   * Config store plugin name, or several comma-separated (`file,consul,kubernetes`):
   * rules are read from all of them (the first listed wins a rule two define
   * differently, reported as a conflict) and written to the first.
   */
  configStore: string;
  stateStore: string;
  /** Platform registries to run; `vm` takes workload registrations. */
  platforms: string[];
  /** Per-plugin settings from the command line (e.g. `consul`: address, token, datacenter), handed to plugins as is. */
  pluginOptions?: PluginContext['pluginOptions'];
  logger: Logger;
}

/**
 * What a platform may run beside the control plane once its CA, mesh and
 * rule store exist (Kubernetes: admission webhooks, leader-only work). A
 * platform registry offers it by having `startAddon`; core knows no platform.
 */
export interface ControlPlaneAddon {
  startAddon(host: ControlPlaneAddonHost): Promise<StartedAddon>;
}

export interface ControlPlaneAddonHost {
  ca: CertificateAuthority;
  mesh: MeshService;
  configStore: ConfigStore;
  settings: MeshSettings;
  /** The control plane's listen address (`--host`). */
  host: string;
  logger: Logger;
}

export interface StartedAddon {
  /** Ports the addon listens on, by name (e.g. `webhook`). */
  ports?: Record<string, number>;
  close(): Promise<void>;
}

export function isControlPlaneAddon(x: unknown): x is ControlPlaneAddon {
  return typeof (x as Partial<ControlPlaneAddon> | undefined)?.startAddon === 'function';
}

export interface RunningControlPlane {
  ports: { discovery: number; discoveryTls?: number; api: number; apiTls?: number };
  /** Ports of platform addons by name (`webhook` with the kubernetes platform). */
  addonPorts: Record<string, number>;
  mesh: MeshService;
  ca: CertificateAuthority;
  close(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<RunningControlPlane> {
  const { container, logger } = options;
  const context: PluginContext = { dataDir: options.dataDir, settings: options.settings, pluginOptions: options.pluginOptions, logger: logger.child({ component: 'plugins' }) };
  const closers: Array<() => Promise<unknown> | unknown> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    const state: StateStore = await pluginNamed(container, STATE_STORE, options.stateStore).create(context);
    closers.push(() => state.close());
    const store: ConfigStore = await openConfigStores(options.configStore, async (name) => pluginNamed(container, CONFIG_STORE, name).create({ ...context, state }), closers);

    const registry = new RegistryAggregator();
    closers.push(() => registry.stop());
    let registrar: WorkloadRegistrar | undefined;
    const extensions: ApiExtension[] = [];
    const addons: ControlPlaneAddon[] = [];
    for (const name of options.platforms) {
      const platform = await pluginNamed(container, PLATFORM_REGISTRY, name).create({ ...context, state });
      await registry.add(platform);
      if (isApiExtension(platform)) extensions.push(platform);
      if (isControlPlaneAddon(platform)) addons.push(platform);
      if (platform.register && platform.deregister && platform.setHealth && platform.list) registrar ??= platform as WorkloadRegistrar;
    }
    if (!registrar) throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', 'no platform that accepts workload registrations is enabled', { hint: 'add the vm platform' });

    const mesh = new MeshService(store, registry, options.settings);
    await mesh.start();
    closers.push(() => mesh.stop());
    // Operators' TLS credentials (Gateway credentialName): read before any proxy connects, then kept current.
    const credentials = new TlsCredentials({ state, onChange: (all, signature) => mesh.setCredentials(all, signature), logger: logger.child({ component: 'credentials' }) });
    await credentials.start();
    closers.push(() => credentials.stop());

    // The CA: a root made on first start and kept in the state store (secret: 0600 on disk).
    const ca = await CertificateAuthority.open(state, { trustDomain: options.settings.trustDomain, logger: logger.child({ component: 'ca' }) });
    // Proxies trust the bundle the discovery stream carries: pushed again when a root rotates and when an overlap ends.
    let trustTimer: ReturnType<typeof setTimeout> | undefined;
    const pushTrustBundle = (): void => {
      mesh.setTrustBundle(ca.trustBundle());
      if (trustTimer !== undefined) clearTimeout(trustTimer);
      const next = ca.nextTrustChangeAt();
      trustTimer = next === undefined ? undefined : setTimeout(pushTrustBundle, Math.min(Math.max(0, next.getTime() - Date.now()) + 1000, 2 ** 31 - 1));
      trustTimer?.unref();
    };
    pushTrustBundle();
    const offCaChange = ca.onChange(pushTrustBundle);
    closers.push(() => {
      offCaChange();
      if (trustTimer !== undefined) clearTimeout(trustTimer);
    });
    const workloadServiceAccount = (namespace: string, name: string) => mesh.snapshot().workloads.find((w) => w.namespace === namespace && w.name === name)?.serviceAccount;
    // Gauges read these when scraped; `discovery` exists by then.
    const metrics = new ControlPlaneMetrics({ proxies: () => discovery.status(), registrySizes: () => registry.sizes() });
    closers.push(ca.onCertificate(metrics.certificate));
    const discovery: DiscoveryServer = new DiscoveryServer({
      source: mesh,
      observer: metrics,
      logger: logger.child({ component: 'discovery' }),
      authorizeNode: (node, spiffeId) => nodeIdentityProblem(node, spiffeId, workloadServiceAccount),
    });
    const discoveryPort = await discovery.listen(options.host, options.discoveryPort).catch((err: Error) => {
      throw portError(err, options.host, options.discoveryPort, '--discovery-port');
    });
    closers.push(() => discovery.close());
    let discoveryTlsPort: number | undefined;
    const cpSpiffeId = controlPlaneSpiffeId(options.settings.trustDomain, options.settings.rootNamespace);
    let identity: ControlPlaneIdentity | undefined;
    if (options.discoveryTlsPort !== undefined || options.apiTlsPort !== undefined) {
      const started = await ControlPlaneIdentity.start(ca, cpSpiffeId, logger.child({ component: 'ca' }));
      identity = started;
      closers.push(() => started.stop());
    }
    if (options.discoveryTlsPort !== undefined) {
      discoveryTlsPort = await discovery.addPort(options.discoveryTlsHost ?? (options.apiTlsPort !== undefined ? options.apiTlsHost : undefined) ?? options.host, options.discoveryTlsPort, identity!.credentials());
    }

    const authenticators = await Promise.all(pluginsOf(container, AUTHENTICATOR).map((p) => p.create({ ...context, state })));
    const signer = new CsrSigningService({ ca, authenticators, logger: logger.child({ component: 'ca' }) });
    const adminToken = await loadOrCreateAdminToken(options.dataDir);

    let apiTlsPort: number | undefined;
    const extensionHost: ApiExtensionHost = {
      trustDomain: options.settings.trustDomain,
      controlPlaneSpiffeId: cpSpiffeId,
      requireAdmin: (req) => requireAdmin({ adminToken }, req),
      // The current root comes first in the bundle; a VM pins it on first contact.
      rootSha256: () => certificateSha256(ca.trustBundle()[0]),
      tlsAddresses: () => (apiTlsPort === undefined ? [] : advertisedAddresses(options.advertiseAddresses, options.apiTlsHost ?? options.host, apiTlsPort)),
      discoveryPorts: () => ({ plain: discoveryPort, ...(discoveryTlsPort === undefined ? {} : { tls: discoveryTlsPort }) }),
    };

    const config = new ConfigService(store, () => mesh.knownHosts());
    const api = new ApiServer({
      extraRoutes: [
        ...credentials.routes(extensionHost.requireAdmin),
        ...extensions.flatMap((e) => e.apiRoutes(extensionHost)),
        analyzeRoute(() => ({
          snapshot: mesh.snapshot(),
          resources: mesh.resources(),
          registryConflicts: registry.conflicts(),
          configConflicts: store instanceof MultiConfigStore ? store.conflicts() : [],
          aliasConflicts: mesh.serviceAliasConflicts(),
          platformHasService: (platform, host) => registry.hasPlatformService(platform, host),
          heartbeats: registrar.heartbeats?.() ?? [],
          now: Date.now(),
        })),
      ],
      config,
      registrar,
      snapshot: () => mesh.snapshot(),
      proxies: () => discovery.status(),
      status: () => ({
        registries: registry.sizes(),
        dataDir: options.dataDir,
        conflicts: registry.conflicts(),
        configStores: store instanceof MultiConfigStore ? store.storeNames() : [options.configStore],
        configConflicts: store instanceof MultiConfigStore ? store.conflicts() : [],
      }),
      certificates: { ca, signer, state, trustDomain: options.settings.trustDomain, adminToken },
      logger: logger.child({ component: 'api' }),
      metrics,
    });
    closers.push(() => api.close());
    const apiPort = await api.listen(options.host, options.apiPort);
    if (options.apiTlsPort !== undefined) apiTlsPort = await api.listenTls(options.apiTlsHost ?? options.host, options.apiTlsPort, identity!);

    const addonPorts: Record<string, number> = {};
    for (const addon of addons) {
      const started = await addon.startAddon({ ca, mesh, configStore: store, settings: options.settings, host: options.host, logger });
      closers.push(() => started.close());
      Object.assign(addonPorts, started.ports);
    }

    logger.info({ discovery: `${options.host}:${discoveryPort}`, discoveryTls: discoveryTlsPort, api: `${options.host}:${apiPort}`, apiTls: apiTlsPort, dataDir: options.dataDir }, 'control plane ready');
    return { ports: { discovery: discoveryPort, discoveryTls: discoveryTlsPort, api: apiPort, apiTls: apiTlsPort }, addonPorts, mesh, ca, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** One store, or a MultiConfigStore over a comma-separated list; whatever was opened is closed by `closers`. */
async function openConfigStores(spec: string, create: (name: string) => Promise<ConfigStore>, closers: Array<() => Promise<unknown> | unknown>): Promise<ConfigStore> {
  const names = spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 1) {
    const store = await create(names[0]);
    closers.push(() => store.close());
    return store;
  }
  const opened: NamedConfigStore[] = [];
  try {
    for (const name of names) opened.push({ name, store: await create(name) });
    const multi = await MultiConfigStore.open(opened);
    closers.push(() => multi.close());
    return multi;
  } catch (err) {
    await Promise.allSettled(opened.map((o) => o.store.close()));
    throw err;
  }
}

function portError(err: Error & { code?: string }, host: string, port: number, flag: string): Error {
  if (err.code === 'EADDRINUSE' || /address already in use|EADDRINUSE|No address added/i.test(err.message)) {
    return new JibeError('JIBE_ERR_PORT_IN_USE', `port ${port} on ${host} is already in use`, { hint: `stop the process using it or pass another ${flag}` });
  }
  return err;
}

/**
 * Where VMs reach the TLS API: the advertised names when given (with the port
 * added unless they carry one), the listen address when it is specific, or
 * every external IPv4 address of this host when it listens on all.
 */
export function advertisedAddresses(advertised: string[] | undefined, listenHost: string, port: number): string[] {
  const withPort = (h: string) => (/^\[.*\]:\d+$|^[^:]+:\d+$/.test(h) ? h : h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`);
  if (advertised?.length) return advertised.map(withPort);
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return [withPort(listenHost)];
  const external = Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && a.family === 'IPv4')
    .map((a) => withPort(a!.address));
  return external.length ? external : [withPort('127.0.0.1')];
}
