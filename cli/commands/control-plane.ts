// `jibe control-plane`: runs the control plane in the foreground.
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { collect, parsePort, parsePortOrOff, portOrUndefined } from '../options.ts';

export const DEFAULT_DATA_DIR = process.env.JIBE_DATA_DIR ?? path.join(os.homedir(), '.jibe');

export function registerControlPlane(program: Command): void {
  program
    .command('control-plane')
    .description('run the control plane: registries, rule store, discovery stream (15010) and API (15014)')
    .option('--data-dir <dir>', 'where rules and state are kept', DEFAULT_DATA_DIR)
    .option('--host <address>', 'address to listen on (loopback unless proxies run elsewhere)', '127.0.0.1')
    .option('--discovery-port <port>', 'discovery stream port', parsePort, 15010)
    .option('--discovery-tls-port <port>', 'discovery stream over mutual TLS (proxies present their workload certificate); "off" to not serve it', parsePortOrOff, 15012)
    .option('--api-port <port>', 'HTTP API port', parsePort, 15014)
    .option('--api-tls-port <port>', 'API over TLS for VMs (certificates, join, registration); "off" to not serve it', parsePortOrOff, 15015)
    .option('--api-tls-host <address>', 'address the TLS API listens on (VMs must reach it)', '0.0.0.0')
    .option('--advertise-address <host[:port]>', 'address VMs reach the TLS API at, written into join tokens (repeatable; default: this host\'s addresses)', collect)
    .option('--config-store <list>', 'where rules are kept: a store, or several comma-separated (file,consul,kubernetes) read together, the first written to and winning a rule two define differently', 'file')
    .option('--state-store <name>', 'where the control plane keeps its own state', 'file')
    .option('--platforms <list>', 'platform registries to run, comma-separated', 'vm')
    .option('--domain <domain>', 'DNS suffix of service host names', 'cluster.local')
    .option('--trust-domain <domain>', 'SPIFFE trust domain', 'cluster.local')
    .option('--consul-address <address>', 'Consul HTTP API for the consul platform and stores (default CONSUL_HTTP_ADDR, else 127.0.0.1:8500)')
    .option('--consul-token <token>', 'Consul ACL token (default CONSUL_HTTP_TOKEN); see platforms/consul/README.md for its minimal policy')
    .option('--consul-datacenters <list>', "Consul datacenters to take services from, comma-separated (default: the agent's own)")
    .option('--consul-kv-prefix <path>', 'Consul KV prefix of the consul config and state stores', 'jibe')
    .option('--consul-namespace <name>', 'mesh namespace of Consul services that name none (Meta jibe-namespace)', 'default')
    .option('--consul-warning-healthy', "count Consul checks in state warning as healthy (Consul DNS's default); otherwise only passing instances get traffic")
    .option('--consul-secret-key-file <file>', 'encrypt secret state (the CA key) in Consul KV with a key derived from this file (same file on every replica)')
    .option('--kubeconfig <file>', 'kubeconfig of the cluster for the kubernetes platform and stores (default KUBECONFIG_JIBE, then KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--kube-context <name>', 'kubeconfig context to use (default: its current context)')
    .option('--namespace <ns>', "the control plane's own Kubernetes namespace: state Secrets/ConfigMaps, leader Lease (default POD_NAMESPACE, else jibe-system)")
    .option('--webhook-port <port>', 'admission webhook port (sidecar injection, rule validation) with the kubernetes platform; "off" to not serve it', parsePortOrOff, 15017)
    .option('--proxy-image <image>', 'image of the sidecar and init containers the injection webhook adds (default jibe/jibe:0.1.0)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (opts) => {
      const { pino } = await import('pino');
      const { registerPlugins } = await import('../plugins.ts');
      const { startControlPlane } = await import('../../core/control-plane.ts');
      const { DEFAULT_MESH_SETTINGS } = await import('../../core/mesh/mesh-snapshot.ts');
      const logger = pino({ level: opts.logLevel, name: 'control-plane' });
      const running = await startControlPlane({
        container: registerPlugins(),
        dataDir: path.resolve(opts.dataDir),
        settings: { ...DEFAULT_MESH_SETTINGS, domain: opts.domain, trustDomain: opts.trustDomain },
        host: opts.host,
        discoveryPort: opts.discoveryPort,
        discoveryTlsPort: portOrUndefined(opts.discoveryTlsPort),
        apiPort: opts.apiPort,
        apiTlsPort: portOrUndefined(opts.apiTlsPort),
        apiTlsHost: opts.apiTlsHost,
        advertiseAddresses: opts.advertiseAddress,
        configStore: opts.configStore,
        stateStore: opts.stateStore,
        platforms: String(opts.platforms).split(',').map((s) => s.trim()).filter(Boolean),
        pluginOptions: {
          consul: {
            address: opts.consulAddress,
            token: opts.consulToken,
            datacenters: opts.consulDatacenters,
            kvPrefix: opts.consulKvPrefix,
            namespace: opts.consulNamespace,
            warningIsHealthy: opts.consulWarningHealthy === true,
            secretKeyFile: opts.consulSecretKeyFile,
          },
          kubernetes: {
            kubeconfig: opts.kubeconfig,
            context: opts.kubeContext,
            namespace: opts.namespace,
            webhookPort: portOrUndefined(opts.webhookPort),
            injection: opts.proxyImage ? { image: opts.proxyImage } : undefined,
          },
        },
        logger,
      });
      await waitForSignal();
      logger.info('shutting down');
      await running.close();
    });
}

/** Resolves on SIGINT or SIGTERM. */
export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
