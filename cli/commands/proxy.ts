// `jibe proxy`: runs a sidecar or a gateway proxy fed by the discovery stream.
import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { PolicyAdapterPlugin } from '../../core/model/policy-adapter.ts';
import type { PolicyAdapter } from '../../proxy/security/policy-adapter.ts';
import type { RunningIdentity } from '../../proxy/identity/identity-source.ts';
import { collect, parseLabels, parsePort, parsePortMap, parsePortOrOff, portOrUndefined } from '../options.ts';
import { waitForSignal } from './control-plane.ts';

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run a Jibe proxy (sidecar or ingress gateway) connected to the control plane')
    .option('--type <type>', 'sidecar or gateway', 'sidecar')
    .option('--namespace <ns>', 'namespace of the workload or gateway', 'default')
    .option('--workload <name>', 'the workload this sidecar fronts (sidecars)')
    .option('--platform <name>', 'platform the workload is registered on', 'vm')
    .option('--labels <k=v,...>', 'labels of the proxy (gateways are selected by them)', parseLabels, {})
    .option('--id <id>', 'proxy id shown in proxy-status (default: type~workload.namespace)')
    .option('--discovery <host:port>', 'control plane discovery address', '127.0.0.1:15010')
    .option('--outbound-port <port>', 'outbound listener port (sidecars)', parsePort, 15001)
    .option('--admin-port <port>', 'admin port: /ready, /config_dump, /stats', parsePort, 15000)
    .option('--bind <address>', 'address the outbound listener binds to', '127.0.0.1')
    .option('--listener-address <address>', 'bind inbound and gateway listeners here instead of the address in config')
    .option('--listener-port <configPort=port>', 'bind a config listener on another port, e.g. 8080=18080 (repeatable)', collect)
    .option('--capture', 'iptables capture is on: serve outbound-port connections by their original destination (SO_ORIGINAL_DST)', false)
    .option('--inbound-capture-port <port>', 'inbound capture port (Istio: 15006); inbound listeners are reached through it instead of being bound', parsePort)
    .option('--sniff-timeout <ms>', 'protocol detection wait for undeclared ports, ms', parsePositiveMs, 100)
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .option('--metrics-port <port|off>', 'Prometheus endpoint /stats/prometheus (default 15090 when free; the admin port serves it too)', parsePortOrOff)
    .option('--no-metrics', 'record no Istio metrics (the metrics endpoint serves none); for measuring their cost')
    .option('--access-log <format>', 'one line per request on stdout: json, text or off (a MeshConfig accessLog overrides it)', 'off')
    .option('--zipkin <host:port>', 'report trace spans to this Zipkin collector (a MeshConfig tracing overrides it)')
    .option('--trace-sampling <percent>', 'percentage of new traces sampled, 0-100 (Istio default 1)', parsePercent, 1)
    .option('--bootstrap-token-file <file>', 'obtain the workload certificate with this bootstrap token (jibe up); the key stays in memory')
    .option('--kube-token-file <file>', "obtain the workload certificate with this projected Kubernetes service-account token (audience jibe; re-read at each renewal); the control plane checks it with a TokenReview")
    .option('--api <url>', 'control plane API for certificates (with --bootstrap-token-file or --kube-token-file): https://… with --ca-root-file; http:// only on loopback', 'http://127.0.0.1:15014')
    .option('--ca-root-file <file>', "mesh root certificates (PEM) the control plane's TLS API must chain to; its SPIFFE ID is checked as on TLS discovery (Kubernetes: the jibe-ca-root-cert ConfigMap)")
    .option('--service-account <name>', 'service account the certificate names (default: the workload name; gateways: ingressgateway)')
    .option('--trust-domain <domain>', 'trust domain of the mesh', 'cluster.local')
    .option('--cert-dir <dir>', 'use the certificate a node agent keeps in this dir (cert-chain.pem, key.pem, root-cert.pem); env JIBE_PROXY_CERT_DIR')
    .option('--discovery-tls', 'connect to discovery over TLS, presenting the workload certificate (default when the port is 15012)')
    .option('--control-plane-id <spiffeId>', "the control plane's SPIFFE ID checked on TLS discovery (default spiffe://<trust-domain>/ns/jibe-system/sa/jibe-control-plane); env JIBE_CONTROL_PLANE_ID")
    .action(async (opts) => {
      const { pino } = await import('pino');
      const { startProxy } = await import('../../proxy/proxy.ts');
      const policyAdapterPlugins = await loadPolicyAdapterPlugins();
      const type = opts.type === 'gateway' ? 'gateway' : 'sidecar';
      if (opts.type !== type) throw new Error(`--type must be sidecar or gateway, not "${opts.type}"`);
      if (type === 'sidecar' && !opts.workload) throw new Error('a sidecar needs --workload (the workload it fronts)');
      const labels = type === 'gateway' && Object.keys(opts.labels).length === 0 ? { istio: 'ingressgateway' } : opts.labels;
      // Through process.stdout, the stream the access log writes to: one writer keeps lines whole and in order, and
      // never blocks traffic (pino's default, synchronous writes to fd 1, would wait out a full pipe).
      const logger = pino({ level: opts.logLevel, base: { component: 'proxy', workload: opts.workload ?? 'gateway' } }, process.stdout);
      const controlPlaneId: string = opts.controlPlaneId ?? process.env.JIBE_CONTROL_PLANE_ID ?? `spiffe://${opts.trustDomain}/ns/jibe-system/sa/jibe-control-plane`;
      const source = await startIdentitySource(opts, type, logger, controlPlaneId);
      const discoveryTls = opts.discoveryTls === true || /:15012$/.test(opts.discovery);
      if (discoveryTls && source === undefined) throw new Error('discovery over TLS (port 15012 or --discovery-tls) needs a certificate: pass --bootstrap-token-file, --kube-token-file or --cert-dir');
      const proxy = await startProxy({
        identity: source?.identity,
        discoveryTls: discoveryTls ? { controlPlaneId } : undefined,
        node: {
          id: opts.id ?? `${type}~${opts.workload ?? 'ingressgateway'}.${opts.namespace}`,
          type,
          namespace: opts.namespace,
          workload: opts.workload,
          platform: opts.platform,
          labels,
          version: '0.1.0',
        },
        discoveryAddress: opts.discovery,
        // Adapters come from the mesh's extensionProviders, built by these kind plugins on each config change.
        policyAdapterPlugins,
        outboundPort: type === 'sidecar' ? opts.outboundPort : undefined,
        adminPort: opts.adminPort,
        bindAddress: opts.bind,
        listenerOverrides: { address: opts.listenerAddress, ports: parsePortMap(opts.listenerPort ?? []) },
        captureMode: type === 'sidecar' && opts.capture === true,
        inboundCapturePort: type === 'sidecar' ? opts.inboundCapturePort : undefined,
        sniffTimeoutMs: opts.sniffTimeout,
        // Explicit: that port or fail. Default: Istio's 15090, skipped with a warning when another proxy on this host has it.
        // (parsePortOrOff never yields undefined, so undefined means the flag was not given.)
        metricsPort: opts.metricsPort === undefined ? 15090 : portOrUndefined(opts.metricsPort),
        metricsPortOptional: opts.metricsPort === undefined,
        telemetry: {
          metrics: opts.metrics !== false,
          accessLog: parseAccessLog(opts.accessLog),
          tracing: opts.zipkin !== undefined ? { sampling: opts.traceSampling, zipkinAddress: opts.zipkin } : undefined,
        },
        logger,
      });
      logger.info({ ports: proxy.ports }, 'proxy started');
      await waitForSignal();
      await proxy.close();
      source?.stop();
    });
}

/** The proxy's certificate: from a bootstrap token, a cert dir, or none (plaintext only). */
async function startIdentitySource(
  opts: { bootstrapTokenFile?: string; kubeTokenFile?: string; certDir?: string; api: string; caRootFile?: string; serviceAccount?: string; trustDomain: string; namespace: string; workload?: string },
  type: 'sidecar' | 'gateway',
  logger: Logger,
  controlPlaneId: string,
): Promise<RunningIdentity | undefined> {
  const certDir = opts.certDir ?? process.env.JIBE_PROXY_CERT_DIR;
  const tokenFile = opts.bootstrapTokenFile ?? opts.kubeTokenFile;
  if (opts.caRootFile !== undefined && tokenFile === undefined) throw new Error('--ca-root-file verifies the API a token is sent to: pass it with --bootstrap-token-file or --kube-token-file');
  if (tokenFile === undefined && certDir === undefined) return undefined;
  if ([opts.bootstrapTokenFile, opts.kubeTokenFile, certDir].filter((x) => x !== undefined).length > 1) throw new Error('pass one of --bootstrap-token-file, --kube-token-file or --cert-dir');
  const { identityFromToken, identityFromCertDir } = await import('../../proxy/identity/identity-source.ts');
  if (certDir !== undefined) return identityFromCertDir(certDir, logger);
  const serviceAccount = opts.serviceAccount ?? (type === 'gateway' ? 'ingressgateway' : opts.workload!);
  // The Kubernetes authenticator's credential type (platforms/kubernetes KUBERNETES_TOKEN_TYPE), spelled here so `jibe proxy` loads no platform code.
  const credentialType = opts.kubeTokenFile !== undefined ? 'kubernetes-service-account-token' : 'bootstrap-token';
  const tls = opts.caRootFile !== undefined ? { caRootFile: opts.caRootFile, serverSpiffeId: controlPlaneId } : undefined;
  return identityFromToken({ tokenFile: tokenFile!, credentialType, apiBase: opts.api, tls, spiffeId: `spiffe://${opts.trustDomain}/ns/${opts.namespace}/sa/${serviceAccount}`, logger });
}

function parsePercent(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 100) throw new Error(`expected a percentage from 0 to 100, got "${value}"`);
  return n;
}

function parseAccessLog(value: string): 'json' | 'text' | 'off' {
  if (value === 'json' || value === 'text' || value === 'off') return value;
  throw new Error(`--access-log must be json, text or off, not "${value}"`);
}

function parsePositiveMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`expected a whole number of milliseconds > 0, got "${value}"`);
  return n;
}

/** The policy adapter kinds from the one plugin list (each loads its implementation only when a provider uses it). */
async function loadPolicyAdapterPlugins(): Promise<Array<PolicyAdapterPlugin<PolicyAdapter>>> {
  const { registerPlugins } = await import('../plugins.ts');
  const { policyAdapterPlugins } = await import('../../core/plugins/plugin-tokens.ts');
  return policyAdapterPlugins(registerPlugins()) as Array<PolicyAdapterPlugin<PolicyAdapter>>;
}
