// The proxy's composition root: starts the admin server and (for sidecars)
// the outbound listener, applies config updates atomically, and wires the
// discovery client to `apply`. An update is validated and compiled, its new
// ports bound, and only then swapped in with one assignment; any failure
// leaves the running config serving (the discovery client NACKs with the
// error's message).
import type { PeerCertificate } from 'node:tls';
import pino from 'pino';
import type { Logger } from 'pino';
import type { JibeError } from '../core/errors/errors.ts';
import type { PolicyAdapterPlugin } from '../core/model/policy-adapter.ts';
import type { ConfigUpdate, MeshResource, ProxyNode, ProxyResource } from '../core/model/proxy-config.ts';
import { startAdminServer } from './admin/admin-server.ts';
import type { AdminServer } from './admin/admin-server.ts';
import type { LoadBalancerRegistry } from './cluster/load-balancer.ts';
import { defaultLoadBalancers } from './cluster/load-balancers.ts';
import { ProxyState, applyUpdate, releaseUnused } from './config/proxy-state.ts';
import type { DiscoveryClient } from './discovery/discovery-client.ts';
import { overrideListeners } from './config/listener-overrides.ts';
import type { ListenerOverrides } from './config/listener-overrides.ts';
import type { ResourceMap, StateContext } from './config/proxy-state.ts';
import { forwardRequest } from './http/forward-request.ts';
import type { PolicyAdapter, PolicyAdapterRegistry } from './security/policy-adapter.ts';
import { ProviderAdapters } from './security/policy-adapter-providers.ts';
import type { AdapterChange } from './security/policy-adapter-providers.ts';
import { createSecurityInterceptor, securityDeps } from './security/security-interceptor.ts';
import { compileSecurity } from './security/security-validation.ts';
import type { HttpListener } from './listeners/listener-http.ts';
import { CaptureListener } from './listeners/listener-capture.ts';
import { ListenerManager } from './listeners/listener-manager.ts';
import { createOutboundListener } from './listeners/listener-outbound.ts';
import { createCorsInterceptor } from './resilience/cors.ts';
import { createFaultInterceptor } from './resilience/fault-injection.ts';
import { RateLimiter, createRateLimitInterceptor } from './resilience/rate-limit.ts';
import { composeDispatch } from './router/router.ts';
import type { Interceptor } from './router/router.ts';
import { ProxyStats } from './stats/proxy-stats.ts';
import { startMetricsServer } from './telemetry/metrics-server.ts';
import type { MetricsServer } from './telemetry/metrics-server.ts';
import { ProxyTelemetry } from './telemetry/proxy-telemetry.ts';
import type { ProxyTelemetryOptions, TelemetrySettings } from './telemetry/proxy-telemetry.ts';
import { spiffeIdOf } from './identity/mesh-tls.ts';
import type { MeshIdentity } from './tls/mesh-identity.ts';
import { TlsGate } from './tls/tls-gate.ts';
import { meshTlsAcceptor } from './tls/tls-inbound.ts';
import { UpstreamTlsFactory } from './tls/tls-upstream.ts';

export interface ProxyOptions {
  node: ProxyNode;
  /** Control plane discovery address (`host:port`); without it the proxy runs on what `apply` is given. */
  discoveryAddress?: string;
  /** Sidecars: the outbound listener's port (0 = ephemeral); undefined = no outbound listener. */
  outboundPort?: number;
  adminPort: number;
  /** Address of the outbound listener (default 127.0.0.1). */
  bindAddress?: string;
  /** Address of the admin server (default 127.0.0.1: config dumps and quitquitquit stay local). */
  adminAddress?: string;
  /** Default: warnings and errors as JSON lines on stderr. */
  logger?: Logger;
  /** How long close() lets in-flight requests finish (default 5000 ms). */
  drainTimeoutMs?: number;
  /** Features wrapping the dispatch path, outermost first (inside the built-in rate limit, CORS and fault filters). */
  interceptors?: Interceptor[];
  /** Randomness for balancing and sampling (fault, mirror), and the clock (ms) for rate limits and outlier ejection; tests pin them. */
  random?: () => number;
  now?: () => number;
  /** Balancer policies; the built-in registry by default. */
  loadBalancers?: LoadBalancerRegistry;
  /** Bind config listeners (inbound, gateway) elsewhere than the config says. */
  listenerOverrides?: ListenerOverrides;
  /** Adapters registered in code, besides those the mesh config's extensionProviders create. */
  policyAdapters?: PolicyAdapterRegistry;
  /**
   * Adapter kinds (cli/plugins.ts POLICY_ADAPTER) that turn the mesh resource's
   * extensionProviders into adapters; none = a config naming a provider is rejected.
   */
  policyAdapterPlugins?: PolicyAdapterPlugin<PolicyAdapter>[];
  /**
   * Sidecars under iptables capture: connections on the outbound port are
   * served by their original destination (virtual outbound listeners,
   * passthrough or refusal per the mesh's outboundTrafficPolicy); ones made to
   * the port directly still get the explicit HTTP proxy. Loads koffi.
   */
  captureMode?: boolean;
  /** Inbound capture port (Istio 15006); inbound listeners are then reached through it and not bound. */
  inboundCapturePort?: number;
  /** Addresses of the inbound capture port (default 0.0.0.0 and ::, where REDIRECT delivers). */
  inboundCaptureAddresses?: string[];
  /** Protocol sniffing wait for `auto` listeners (default 100 ms, Istio's protocolDetectionTimeout). */
  sniffTimeoutMs?: number;
  /** Istio metrics, access log, tracing; metrics on, access log and tracing off by default. The mesh's settings override these per config. */
  telemetry?: Omit<ProxyTelemetryOptions, 'node' | 'state'>;
  /** Prometheus endpoint port (`/stats/prometheus`, Istio 15090); undefined = none (the admin port serves it too). */
  metricsPort?: number;
  /** Address of the metrics endpoint (default 0.0.0.0: Prometheus scrapes from elsewhere). */
  metricsAddress?: string;
  /** A taken metrics port is logged and skipped instead of failing the start (the default port of `jibe proxy`). */
  metricsPortOptional?: boolean;
  /**
   * The workload certificate (kept current by its source: IdentityManager or a
   * cert dir). With it the proxy terminates mesh mTLS on inbound ports per
   * PeerAuthentication and dials mesh mTLS to endpoints that run a proxy
   * (auto mTLS); without it, everything is plaintext and STRICT ports refuse.
   */
  identity?: MeshIdentity;
  /** Discovery over TLS: the control plane must present this SPIFFE ID; the proxy presents its certificate (needs `identity`). */
  discoveryTls?: { controlPlaneId: string };
}

export interface RunningProxy {
  ports: { outbound?: number; admin: number; inboundCapture?: number; metrics?: number };
  /** Applies one update atomically. @throws JibeError when it is rejected (the previous config keeps serving). */
  apply(update: ConfigUpdate): Promise<void>;
  state(): { version: string; resources: ProxyResource[] };
  /** Ports of the config listeners (inbound, gateway) by listener name. */
  listenerPorts(): Record<string, number>;
  stats: ProxyStats;
  telemetry: ProxyTelemetry;
  /** Drains and stops: stops accepting, lets in-flight requests finish up to the drain deadline. */
  close(): Promise<void>;
  /** Settles once the proxy has stopped (after close() or `POST /quitquitquit`). */
  closed: Promise<void>;
}

export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const logger: Logger = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
  const bindAddress = options.bindAddress ?? '127.0.0.1';
  const drainTimeoutMs = options.drainTimeoutMs ?? 5000;
  const stats = new ProxyStats();
  const telemetryDefaults = options.telemetry ?? {};
  const telemetry = new ProxyTelemetry({
    onReportError: (err) => logger.warn({ err: err.message }, 'zipkin report failed'),
    ...telemetryDefaults,
    node: options.node,
    state: () => holder.current,
  });
  stats.telemetry = telemetry;
  const holder: { current: ProxyState } = { current: ProxyState.empty() };
  let resources: ResourceMap = new Map();
  let ready = false;
  // JWT and authorization run first on the inbound path, before any other feature spends work on a request.
  const providerAdapters = new ProviderAdapters(options.policyAdapters, options.policyAdapterPlugins ?? []);
  const security = securityDeps(providerAdapters.current);

  const random = options.random ?? Math.random;
  const now = options.now ?? (() => performance.now());
  const rateLimiter = new RateLimiter({ now });
  const dispatch = composeDispatch(forwardRequest, [
    createSecurityInterceptor(security),
    createRateLimitInterceptor(rateLimiter),
    createCorsInterceptor(),
    createFaultInterceptor({ random }),
    ...(options.interceptors ?? []),
    // Innermost: trace context and peer metadata are set on exactly what goes upstream.
    telemetry.interceptor(),
  ]);
  const reservedPorts = new Map<number, string>();
  const identity = options.identity;
  const tlsGate = new TlsGate({ mesh: identity === undefined ? undefined : meshTlsAcceptor(identity, stats, logger), stats, logger });
  const upstreamTls = new UpstreamTlsFactory({ identity: () => identity, stats, logger });
  const ctx: StateContext = { loadBalancers: options.loadBalancers ?? defaultLoadBalancers, stats, random, now, reservedPorts, upstreamTls };
  const listeners = new ListenerManager({ holder, dispatch, stats, logger, drainTimeoutMs, bindInbound: options.inboundCapturePort === undefined, tlsGate });

  let outbound: HttpListener | undefined;
  const captures: CaptureListener[] = [];
  const ownPorts = (): number[] => [...reservedPorts.keys(), ...Object.values(listeners.ports())];
  const captureDeps = { holder, dispatch, stats, logger, drainTimeoutMs, ownPorts, sniffTimeoutMs: options.sniffTimeoutMs, random: ctx.random, tlsGate };
  let admin: AdminServer | undefined;
  let metricsServer: MetricsServer | undefined;
  let discovery: DiscoveryClient | undefined;
  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));

  // Updates are applied one at a time, in arrival order.
  let queue: Promise<unknown> = Promise.resolve();

  async function applyNow(update: ConfigUpdate): Promise<void> {
    if (closing !== undefined) throw new Error('the proxy is shutting down');
    const previous = holder.current;
    let next: ProxyState;
    let nextResources: ResourceMap;
    let adapters: AdapterChange | undefined;
    try {
      ({ resources: nextResources, state: next } = applyUpdate(resources, overrideListeners(update, options.listenerOverrides), ctx, previous));
      // Policy adapters are rebuilt only when the providers changed, so quotas keep their buckets across pushes.
      if (providerAdapters.changed(next.mesh.extensionProviders)) adapters = await providerAdapters.prepare(next.mesh.extensionProviders);
      const nextSecurity = adapters === undefined ? security : { ...security, adapters: adapters.registry };
      compileSecurity(nextResources.values(), next.version, nextSecurity);
    } catch (err) {
      adapters?.abort();
      stats.config_update_rejected++;
      throw err;
    }
    let txn;
    try {
      txn = await listeners.prepare(next);
    } catch (err) {
      adapters?.abort();
      stats.config_update_rejected++;
      for (const name of next.clusters.keys()) if (!previous.clusters.has(name)) stats.clusters.delete(name);
      throw err;
    }
    holder.current = next;
    resources = nextResources;
    if (adapters !== undefined) {
      adapters.commit();
      security.adapters = adapters.registry;
    }
    txn.commit();
    releaseUnused(previous, next, stats);
    // Roots pushed by the control plane (root rotation) are trusted from the next connection on.
    if (next.mesh.trustBundle !== undefined) identity?.setPushedRoots(next.mesh.trustBundle);
    ready = true;
    telemetry.configure(meshTelemetry(next.mesh, telemetryDefaults));
    stats.config_update_success++;
    logger.info({ version: next.version, resources: nextResources.size }, 'config applied');
  }

  function apply(update: ConfigUpdate): Promise<void> {
    const run = queue.then(() => applyNow(update));
    queue = run.catch(() => undefined);
    return run;
  }

  function configDump(): { version: string; resources: ProxyResource[] } {
    const list = [...resources.values()].sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type.localeCompare(b.type)));
    return { version: holder.current.version, resources: list };
  }

  function close(): Promise<void> {
    closing ??= (async () => {
      try {
        await discovery?.stop();
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'discovery client did not stop cleanly');
      }
      await Promise.all([outbound?.close(drainTimeoutMs), listeners.close(drainTimeoutMs), ...captures.map((c) => c.close(drainTimeoutMs))]);
      for (const cluster of holder.current.clusters.values()) cluster.pool.destroy();
      await admin?.close();
      await metricsServer?.close();
      await telemetry.close();
      providerAdapters.close();
      logger.info({ node: options.node.id }, 'proxy stopped');
    })().finally(resolveClosed);
    return closing;
  }

  try {
    if (options.outboundPort !== undefined) {
      outbound = createOutboundListener({ address: bindAddress, port: options.outboundPort, holder, dispatch, stats, logger });
      if (options.captureMode === true) {
        // The capture server owns the port; the HTTP listener serves only the connections it hands over.
        const capture = new CaptureListener({ ...captureDeps, direction: 'outbound', addresses: captureAddresses(bindAddress), port: options.outboundPort, direct: outbound });
        captures.push(capture);
        await capture.listen();
      } else {
        await outbound.listen();
      }
      reservedPorts.set(outbound.port, 'outbound listener');
    }
    if (options.inboundCapturePort !== undefined) {
      const addresses = options.inboundCaptureAddresses ?? ['0.0.0.0', '::'];
      const capture = new CaptureListener({ ...captureDeps, direction: 'inbound', addresses, port: options.inboundCapturePort });
      captures.push(capture);
      await capture.listen();
      reservedPorts.set(capture.port, 'inbound capture port');
    }
    admin = await startAdminServer(options.adminAddress ?? '127.0.0.1', options.adminPort, {
      ready: () => ready,
      configDump,
      stats,
      prometheus: () => telemetry.render(),
      quit: () => void close(),
    });
    reservedPorts.set(admin.port, 'admin server');
    if (options.metricsPort !== undefined) {
      try {
        metricsServer = await startMetricsServer(options.metricsAddress ?? '0.0.0.0', options.metricsPort, () => telemetry.render());
        reservedPorts.set(metricsServer.port, 'metrics endpoint');
      } catch (err) {
        if (options.metricsPortOptional !== true || (err as JibeError).code !== 'JIBE_ERR_PORT_IN_USE') throw err;
        logger.warn({ port: options.metricsPort }, 'metrics port in use: metrics are served on the admin port only (/stats/prometheus)');
      }
    }

    if (options.discoveryAddress !== undefined) {
      // Loaded only when used, so a proxy fed by `apply` never loads gRPC.
      const { DiscoveryClient } = await import('./discovery/discovery-client.ts');
      const discoveryTls = options.discoveryTls;
      if (discoveryTls !== undefined && identity === undefined) throw new Error('discovery over TLS needs the proxy certificate (a bootstrap token or a cert dir)');
      const tls =
        discoveryTls === undefined || identity === undefined
          ? undefined
          : () => ({
              key: identity.certificate.keyPem,
              cert: identity.certificate.certChainPem,
              ca: identity.roots(),
              minVersion: 'TLSv1.2' as const,
              // The control plane's certificate names a SPIFFE ID, not a host name.
              checkServerIdentity: (_host: string, peer: PeerCertificate) => {
                const id = spiffeIdOf(peer);
                return id === discoveryTls.controlPlaneId ? undefined : new Error(`the control plane presented ${id ?? 'no SPIFFE ID'}, not ${discoveryTls.controlPlaneId}`);
              },
            });
      discovery = new DiscoveryClient({ address: options.discoveryAddress, node: options.node, apply, logger, tls });
      discovery.start();
    }
  } catch (err) {
    await Promise.all(captures.map((c) => c.close(0)));
    await outbound?.close(0);
    await admin?.close();
    await metricsServer?.close();
    await telemetry.close();
    throw err;
  }

  logger.info({ node: options.node.id, outbound: outbound?.port, admin: admin.port }, 'proxy started');
  return {
    ports: { outbound: outbound?.port, admin: admin.port, inboundCapture: captures.find((c) => c.direction === 'inbound')?.port, metrics: metricsServer?.port },
    apply,
    state: configDump,
    listenerPorts: () => listeners.ports(),
    stats,
    telemetry,
    close,
    closed,
  };
}

/** The mesh's telemetry settings (MeshConfig `accessLog` / `tracing`) over the proxy's own flags; absent ones keep the flags. */
function meshTelemetry(mesh: MeshResource, defaults: TelemetrySettings): TelemetrySettings {
  return {
    metrics: defaults.metrics,
    accessLog: mesh.accessLog ?? defaults.accessLog,
    tracing: mesh.tracing ?? defaults.tracing,
  };
}

/** Outbound REDIRECT rewrites the destination to loopback of the connection's family, so capture listens on both. */
function captureAddresses(bindAddress: string): string[] {
  if (bindAddress === '127.0.0.1') return ['127.0.0.1', '::1'];
  if (bindAddress === '0.0.0.0') return ['0.0.0.0', '::'];
  return [bindAddress];
}
