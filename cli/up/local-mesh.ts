// The local mesh of `jibe up`: a control plane, BookInfo with one sidecar per
// workload, and an ingress gateway, all as processes on this machine.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JibeError } from '../../core/errors/errors.ts';
import type { ParsedDocument } from '../../core/config/load-documents.ts';
import { PROXY_NODE_FLAGS } from '../../proxy/proxy-node-flags.ts';
import type { ProxyStatus } from '../../core/discovery/discovery-subscriber.ts';
import { callApi } from '../api-client.ts';
import { syncState } from '../commands/proxy-status.ts';
import { ProcessSupervisor } from './process-supervisor.ts';
import type { Child } from './process-supervisor.ts';
import { ensurePortFree, freePort } from './ports.ts';
import { LocalMeshTokens } from './local-mesh-tokens.ts';
import type { LocalConsul } from './local-consul.ts';
import type { LocalKube } from './local-kube.ts';

// The processes run from wherever this file runs: the compiled JS in dist/ for
// users (`npm start`), the TypeScript sources when a developer runs them directly.
const JIBE = fileURLToPath(new URL(`../jibe${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

export interface LocalMeshOptions {
  dataDir: string;
  gatewayPort: number;
  discoveryPort: number;
  apiPort: number;
  bookinfo: boolean;
  /** Zipkin collector (`host:port`) every proxy reports spans to; undefined = no tracing. */
  zipkin?: string;
  /** Sampled percentage of new traces when tracing (default 100: a local mesh is for looking at). */
  traceSampling?: number;
  /** Access log format of every proxy (default off). */
  accessLog?: 'json' | 'text' | 'off';
  /**
   * Platforms the mesh spans (default `vm` only). With `consul` a Consul dev
   * agent from the peer cache runs too, the control plane reads it, and
   * BookInfo's ratings is registered in Consul (with its Jibe sidecar). With
   * `kubernetes` (or `k8s`) etcd and kube-apiserver run too, and productpage,
   * reviews v1 and v2 become Pods with Services and EndpointSlices.
   */
  platforms?: string[];
  /** Progress lines for the user. */
  say: (line: string) => void;
}

export interface RunningWorkload {
  name: string;
  service: string;
  version: string;
  appPort: number;
  inboundPort: number;
  outboundPort: number;
  adminPort: number;
  /** The sidecar's Prometheus endpoint (`/stats/prometheus`). */
  metricsPort: number;
  /** Where the workload is registered (default vm). */
  platform?: string;
}

export interface LocalMesh {
  server: string;
  workloads: RunningWorkload[];
  gateway: { port: number; adminPort: number; metricsPort: number };
  logDir: string;
  /** Resolves with a message when a process of the mesh died unexpectedly. */
  failed: Promise<string>;
  stop(): Promise<void>;
}

/** Platforms `jibe up` can run locally. */
export const LOCAL_PLATFORMS = ['vm', 'consul', 'kubernetes'] as const;

/** Where each BookInfo workload runs, given the platforms: the others stay on vm (reviews-v3 always does, for a split across platforms). */
export function platformOf(workload: string, platforms: readonly string[]): string {
  if (platforms.includes('kubernetes') && ['productpage-v1', 'reviews-v1', 'reviews-v2'].includes(workload)) return 'kubernetes';
  if (platforms.includes('consul') && workload === 'ratings-v1') return 'consul';
  return 'vm';
}

/** The platforms as given (`k8s` meaning kubernetes), checked: known names, vm always among them. */
export function checkLocalPlatforms(given: readonly string[]): string[] {
  const platforms = [...new Set(given.map((p) => (p === 'k8s' ? 'kubernetes' : p)))];
  for (const p of platforms) {
    if (!(LOCAL_PLATFORMS as readonly string[]).includes(p)) throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', `unknown platform ${JSON.stringify(p)}`, { hint: `use some of: ${LOCAL_PLATFORMS.join(', ')}` });
  }
  if (!platforms.includes('vm')) throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', 'the local mesh needs the vm platform (its gateway and apps register there)', { hint: 'add vm to --platforms' });
  // The control plane reads them in this order; vm first keeps the registrar the same as the default mesh's.
  return LOCAL_PLATFORMS.filter((p) => platforms.includes(p));
}

export async function startLocalMesh(options: LocalMeshOptions): Promise<LocalMesh> {
  const { say } = options;
  const platforms = checkLocalPlatforms(options.platforms ?? ['vm']);
  await ensurePortFree(options.gatewayPort, '--gateway-port');
  await ensurePortFree(options.discoveryPort, '--discovery-port');
  await ensurePortFree(options.apiPort, '--api-port');

  const logDir = path.join(options.dataDir, 'logs');
  const supervisor = new ProcessSupervisor(logDir, path.join(options.dataDir, 'processes.json'));
  let fail: (message: string) => void = () => {};
  const failed = new Promise<string>((resolve) => (fail = resolve));
  supervisor.onRestart = (child, code) => say(`! ${child.name} exited (code ${code}); restarting it (see ${child.logFile})`);
  supervisor.onGiveUp = (child, code) => fail(`${child.name} kept exiting (last code ${code}); its log ends with:\n${supervisor.tail(child)}`);
  const server = `http://127.0.0.1:${options.apiPort}`;
  const cpDataDir = path.join(options.dataDir, 'data');
  const tokens = new LocalMeshTokens(server, cpDataDir, options.dataDir);
  // Proxies subscribe over mTLS (Istio's 15012 shape) on a loopback port of their own.
  const discoveryTlsPort = await freePort();
  const discoveryTls = ['--discovery', `127.0.0.1:${discoveryTlsPort}`, '--discovery-tls', '--api', server];
  const workloads: RunningWorkload[] = [];
  let gatewayAdmin = 0;
  let gatewayMetrics = 0;
  const telemetryFlags: string[] = ['--access-log', options.accessLog ?? 'off'];
  if (options.zipkin !== undefined) telemetryFlags.push('--zipkin', options.zipkin, '--trace-sampling', String(options.traceSampling ?? 100));

  try {
    const platformFlags: string[] = [];
    let consul: LocalConsul | undefined;
    if (platforms.includes('consul')) {
      const { startLocalConsul } = await import('./local-consul.ts');
      consul = await startLocalConsul(supervisor, (check, child, what) => waitFor(check, child, supervisor, 60_000, what));
      platformFlags.push('--consul-address', consul.address);
      say(`✓ consul            ${consul.address} (dev agent, datacenter ${consul.datacenter})`);
    }
    let kube: LocalKube | undefined;
    if (platforms.includes('kubernetes')) {
      const { startLocalKube } = await import('./local-kube.ts');
      kube = await startLocalKube(supervisor, options.dataDir, (check, child, what) => waitFor(check, child, supervisor, 90_000, what));
      // The admission webhook is for clusters with a kubelet to inject; the local one has none.
      platformFlags.push('--kubeconfig', kube.kubeconfig, '--webhook-port', 'off');
      say(`✓ kubernetes        ${kube.server} (etcd + kube-apiserver), pods at ${kube.podAddress}`);
    }
    if (platforms.length > 1) platformFlags.push('--platforms', platforms.join(','));
    const cp = supervisor.start('control-plane', [
      JIBE, 'control-plane',
      '--data-dir', cpDataDir,
      '--discovery-port', String(options.discoveryPort),
      '--discovery-tls-port', String(discoveryTlsPort),
      // No VMs join the local mesh: keep it off the network.
      '--api-tls-port', 'off',
      '--api-port', String(options.apiPort),
      ...platformFlags,
    ]);
    await waitFor(() => callApi(server, 'GET', '/healthz').then(() => true, () => false), cp, supervisor, 20_000, 'the control plane to answer');
    say(`✓ control plane     api ${server}, discovery 127.0.0.1:${options.discoveryPort}`);

    if (options.bookinfo) {
      const { BOOKINFO_WORKLOADS } = await import('../../deploy/samples/bookinfo/bookinfo.ts');
      for (const w of BOOKINFO_WORKLOADS) {
        const ports = { appPort: await freePort(), inboundPort: await freePort(), outboundPort: await freePort(), adminPort: await freePort(), metricsPort: await freePort() };
        const running: RunningWorkload = { name: w.name, service: w.service, version: w.version, ...ports };
        const platform = platformOf(w.name, platforms);
        let proxyWorkload = ['--workload', w.name, '--platform', 'vm'];
        if (platform === 'kubernetes' && kube) {
          const { registerKubeWorkload } = await import('./local-kube.ts');
          await registerKubeWorkload(kube, {
            name: w.name,
            service: w.service,
            serviceAccount: w.serviceAccount,
            labels: { app: w.service, version: w.version, 'security.istio.io/tlsMode': 'istio' },
            servicePort: 9080,
            appPort: ports.appPort,
            inboundPort: ports.inboundPort,
          });
          proxyWorkload = ['--workload', w.name, '--platform', 'kubernetes'];
          running.platform = 'kubernetes';
        } else if (platform === 'consul' && consul) {
          const { registerService } = await import('../../platforms/consul/consul-registration.ts');
          const { workload } = await registerService(consul.client, {
            service: w.service,
            id: w.name,
            port: ports.appPort,
            address: '127.0.0.1',
            protocol: 'http',
            namespace: 'default',
            // Tags key=value become labels (Meta keys cannot hold the tlsMode label's dots and slash).
            tags: [`app=${w.service}`, `version=${w.version}`, 'security.istio.io/tlsMode=istio'],
            meta: { 'jibe-service-account': w.serviceAccount, 'jibe-service-port': '9080' },
            sidecar: { port: ports.inboundPort },
          });
          proxyWorkload = ['--workload', workload, '--platform', 'consul'];
          running.platform = 'consul';
        } else {
          await callApi(server, 'PUT', '/api/v1/workloads', {
            name: w.name,
            namespace: 'default',
            address: '127.0.0.1',
            serviceAccount: w.serviceAccount,
            // The sidecar holds a certificate: auto mTLS dials it with mesh mTLS (Istio's injector sets the same label).
            labels: { app: w.service, version: w.version, 'security.istio.io/tlsMode': 'istio' },
            services: [{ name: w.service, port: 9080, targetPort: ports.appPort, portName: 'http' }],
            proxy: { inboundPorts: { [ports.appPort]: ports.inboundPort } },
          });
        }
        supervisor.start(w.name, [w.script, ...w.args, '--port', String(ports.appPort)], {
          HTTP_PROXY: `http://127.0.0.1:${ports.outboundPort}`,
          NODE_USE_ENV_PROXY: '1',
          NO_PROXY: '',
        });
        const tokenFile = await tokens.mint(`${w.name}-sidecar`, 'default', w.serviceAccount);
        // The supervisor runs `node <args>`: the proxies' memory flags go first.
        supervisor.start(`${w.name}-sidecar`, [
          ...PROXY_NODE_FLAGS, JIBE, 'proxy', ...proxyWorkload, '--namespace', 'default',
          ...discoveryTls, '--bootstrap-token-file', tokenFile, '--service-account', w.serviceAccount,
          '--outbound-port', String(ports.outboundPort), '--admin-port', String(ports.adminPort),
          // Istio's source_app / source_version labels come from the workload's labels.
          '--labels', `app=${w.service},version=${w.version}`, '--metrics-port', String(ports.metricsPort), ...telemetryFlags,
        ]);
        workloads.push(running);
      }
      say(`✓ bookinfo          ${workloads.length} workloads, each with its sidecar`);
    }

    gatewayAdmin = await freePort();
    gatewayMetrics = await freePort();
    const gatewayToken = await tokens.mint('ingressgateway', 'jibe-system', 'ingressgateway');
    const gw = supervisor.start('ingressgateway', [
      ...PROXY_NODE_FLAGS, JIBE, 'proxy', '--type', 'gateway', '--namespace', 'jibe-system', '--labels', 'istio=ingressgateway',
      ...discoveryTls, '--bootstrap-token-file', gatewayToken, '--service-account', 'ingressgateway', '--admin-port', String(gatewayAdmin),
      '--listener-address', '127.0.0.1', '--listener-port', `8080=${options.gatewayPort}`,
      '--metrics-port', String(gatewayMetrics), ...telemetryFlags,
    ]);

    if (options.bookinfo) {
      const { loadFiles } = await import('../../core/config/load-documents.ts');
      const { BOOKINFO_NETWORKING_DIR } = await import('../../deploy/samples/bookinfo/bookinfo.ts');
      const documents: ParsedDocument[] = await loadFiles([
        path.join(BOOKINFO_NETWORKING_DIR, 'bookinfo-gateway.yaml'),
        path.join(BOOKINFO_NETWORKING_DIR, 'destination-rule-all.yaml'),
      ]);
      await callApi(server, 'POST', '/api/v1/config/apply', { documents });
      say('✓ rules             bookinfo-gateway, destination-rule-all');
      await waitFor(
        () => fetch(`http://127.0.0.1:${options.gatewayPort}/productpage`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false),
        gw, supervisor, 30_000, 'the ingress gateway to serve /productpage',
      );
    }
    let lagging = '';
    await waitFor(async () => (lagging = await unsyncedProxies(server, workloads.length + 1)) === '', gw, supervisor, 20_000, () => `every proxy to ACK its config (not yet: ${lagging})`);
    say(`✓ ingress gateway   http://localhost:${options.gatewayPort}`);
  } catch (err) {
    await supervisor.stopAll();
    throw err;
  }

  return {
    server,
    workloads,
    gateway: { port: options.gatewayPort, adminPort: gatewayAdmin, metricsPort: gatewayMetrics },
    logDir,
    failed,
    async stop() {
      // Deregister so a later `jibe up` starts from a clean registry, then stop every process.
      await Promise.allSettled(workloads.filter((w) => (w.platform ?? 'vm') === 'vm').map((w) => callApi(server, 'DELETE', `/api/v1/workloads/default/${w.name}`)));
      await supervisor.stopAll();
    },
  };
}

/** '' when at least `expected` proxies are connected and all run the current config, else who is not (for the error). */
async function unsyncedProxies(server: string, expected: number): Promise<string> {
  try {
    const { version, proxies } = await callApi<{ version: string; proxies: ProxyStatus[] }>(server, 'GET', '/api/v1/proxies');
    const lagging = proxies.map((p) => ({ id: p.id, state: syncState(p, version) })).filter((p) => p.state !== 'SYNCED');
    if (proxies.length < expected) lagging.push({ id: `${expected - proxies.length} of ${expected} proxies`, state: 'NOT CONNECTED' });
    return lagging.map((p) => `${p.id} ${p.state}`).join(', ');
  } catch (err) {
    return `the control plane did not answer (${(err as Error).message})`;
  }
}

async function waitFor(check: () => Promise<boolean>, child: Child, supervisor: ProcessSupervisor, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const waitingFor = () => (typeof what === 'string' ? what : what());
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null || child.restarts > 0) {
      throw new JibeError('JIBE_ERR_PROCESS', `${child.name} exited while waiting for ${waitingFor()}; its log (${child.logFile}) ends with:\n${supervisor.tail(child)}`);
    }
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new JibeError('JIBE_ERR_PROCESS', `timed out after ${timeoutMs / 1000}s waiting for ${waitingFor()}`, { hint: `see the logs in ${path.dirname(child.logFile)}` });
}
