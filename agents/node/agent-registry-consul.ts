// `jibe agent join … --registry consul`: the VM's services and its Jibe
// sidecar go into the local Consul agent instead of the control plane's vm
// registry. The certificate still comes from the control plane (token → cert);
// only where the workload is published changes, and with it who judges health:
// Consul's own HTTP check on the app's health URL (the agent then neither
// probes nor reports health to the control plane). The control plane, run with
// `--platforms consul`, sees the instances through its Consul registry.
//
// Layering: agents/ sits above platforms/ only through leaf modules. Like the
// join token (platforms/vm/join-token.ts), the registration body and the HTTP
// client are taken from platforms/consul (consul-registration.ts, the code
// `jibe consul register` runs, and consul-client.ts): both are pure or plain
// fetch and pull in no registry, store or watch code. node-agent.ts imports
// this file lazily, so an agent on the default registry never loads them.
//
// How the mesh reads what is written here (platforms/consul/consul-converters.ts):
// - Meta `jibe-namespace` / `jibe-service-account` give the same namespace and
//   SPIFFE identity the certificate carries; Meta `protocol` the port's protocol;
//   `jibe-service-port` the service port when the app listens elsewhere.
// - labels become Meta where Consul allows the key (letters, digits, _ and -),
//   else `key=value` tags (Consul refuses `.` and `/` in Meta keys), so
//   `security.istio.io/tlsMode=istio` travels as a tag; with the sidecar's
//   `jibe-sidecar` registration it makes peers dial the VM with mesh mTLS.
// - with capture the sidecar is registered on the app's own port: that is
//   where peers dial and iptables hands the connection to the sidecar, and the
//   mesh then reads `inboundPorts {app: app}`, the very layout the vm registry
//   path registers (node-agent.ts mergeOptions), so the sidecar gets its
//   `inbound|<port>` listeners. (The capture-port form, Meta `jibe-capture`,
//   maps to a proxy with no inbound ports, for which no listener is built.)
//
// With Consul ACLs, the token (--consul-token-file, else CONSUL_HTTP_TOKEN) needs:
//   service "<name>" { policy = "write" }               per --service (register, maintenance, deregister)
//   service "<name>-sidecar-proxy" { policy = "write" } with the sidecar
//   agent "<this node>" { policy = "read" }             the node and datacenter name the mesh workload
import fs from 'node:fs';
import { JibeError } from '../../core/errors/errors.ts';
import { compareStrings } from '../../core/model/resource.ts';
import { protocolFromPort } from '../../core/model/service.ts';
import { pathSegment, ConsulClient } from '../../platforms/consul/consul-client.ts';
import { META_SERVICE_ACCOUNT, META_SERVICE_PORT } from '../../platforms/consul/consul-converters.ts';
import { deregisterService, META_KEY, registerService } from '../../platforms/consul/consul-registration.ts';
import type { ConsulServiceSpec } from '../../platforms/consul/consul-registration.ts';
import type { AgentState, ConsulRegistryState } from './agent-state.ts';

const MAINTENANCE_REASON = 'jibe agent stopped (systemctl stop); `jibe agent join` resumes';

/** The instance ID of one service of this VM: unique per Consul node, stable across restarts. */
export function consulInstanceId(workload: string, service: { name: string; port: number }, services: ReadonlyArray<{ name: string }>): string {
  const shared = services.filter((s) => s.name === service.name).length > 1;
  return shared ? `${service.name}-${workload}-${service.port}` : `${service.name}-${workload}`;
}

/** What `jibe consul register` would be given for each service of this VM (pure). */
export function consulServiceSpecs(state: AgentState): ConsulServiceSpec[] {
  const reg = state.registration;
  const meshed = state.capture.enabled && state.proxy.enabled;
  const meta: Record<string, string> = { [META_SERVICE_ACCOUNT]: state.identity.serviceAccount };
  const tags: string[] = [];
  for (const [k, v] of Object.entries(reg.labels ?? {}).sort(([a], [b]) => compareStrings(a, b))) {
    if (META_KEY.test(k) && !k.startsWith('jibe-') && v.length <= 512) meta[k] = v;
    else tags.push(`${k}=${v}`);
  }
  const check = state.healthCheck;
  return reg.services.map((s) => {
    const appPort = s.targetPort ?? s.port;
    const protocol = s.protocol ?? (s.portName ? protocolFromPort(s.portName) : 'http');
    const spec: ConsulServiceSpec = {
      service: s.name,
      id: consulInstanceId(reg.name, s, reg.services),
      port: appPort,
      address: reg.address,
      namespace: state.identity.namespace,
      tags: [...tags],
      meta: appPort === s.port ? { ...meta } : { ...meta, [META_SERVICE_PORT]: String(s.port) },
      sidecar: meshed ? { port: appPort } : false,
    };
    if (protocol !== 'unknown') spec.protocol = protocol;
    if (check) {
      spec.check = check.url;
      spec.checkInterval = `${check.intervalMs}ms`;
      spec.checkTimeout = `${check.timeoutMs}ms`;
      spec.checkFailures = check.failureThreshold;
      spec.checkSuccesses = check.successThreshold;
    }
    return spec;
  });
}

/** A client for the agent's Consul; `fallbackToken` serves when the file cannot be read (any more). */
export function consulClientFor(registry: ConsulRegistryState, fallbackToken?: string): ConsulClient {
  let token: string | undefined;
  if (registry.tokenFile) {
    try {
      token = readTokenFile(registry.tokenFile);
    } catch (err) {
      if (fallbackToken === undefined) throw err;
      token = fallbackToken;
    }
  }
  return new ConsulClient({ address: registry.address, token });
}

function readTokenFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new JibeError('JIBE_ERR_CONSUL', `cannot read the Consul token file ${file}: ${(err as Error).message}`, { file, hint: 'pass a readable --consul-token-file' });
  }
}

/**
 * The Consul side of a running agent: registration, the heartbeat's presence check, maintenance on stop.
 * It keeps only the connection; which instances exist is the agent state's (`registry.instances`).
 */
export class AgentConsulRegistry {
  private readonly registry: ConsulRegistryState;
  private readonly log: (message: string) => void;
  /**
   * Read while the agent may still be root: after it drops to the proxy user a root-only token file is
   * unreadable, yet a token rotated into a readable file is still picked up (the file is read at each use).
   */
  private readonly token: string | undefined;

  /** Throws (before anything is installed) when the token file cannot be read. */
  constructor(registry: ConsulRegistryState, log: (message: string) => void) {
    this.registry = registry;
    this.log = log;
    this.token = registry.tokenFile ? readTokenFile(registry.tokenFile) : undefined;
  }

  private client(): ConsulClient {
    return consulClientFor(this.registry, this.token);
  }

  /**
   * Registers every service of the VM (replacing what an earlier run registered under the same IDs) and
   * takes them out of maintenance; returns the instances with the mesh workload names Consul gives them.
   */
  async register(state: AgentState): Promise<Array<{ id: string; workload: string }>> {
    const client = this.client();
    const instances: Array<{ id: string; workload: string }> = [];
    for (const spec of consulServiceSpecs(state)) {
      const registered = await registerService(client, spec);
      // Without agent:read Consul does not say the node, and a sidecar would subscribe for a workload that does not exist.
      if (registered.workload === registered.id.toLowerCase() && state.proxy.enabled) {
        await deregisterService(client, registered.id).catch(() => undefined);
        throw new JibeError('JIBE_ERR_CONSUL', `Consul did not tell this agent its node name (GET /v1/agent/self refused), so the sidecar cannot name its workload`, {
          hint: 'give the Consul token agent:read on this node (agent "<node>" { policy = "read" })',
        });
      }
      await client.put(`/v1/agent/service/maintenance/${pathSegment(registered.id)}`, undefined, { query: { enable: 'false' } });
      instances.push(registered);
    }
    // A service dropped from the command line since the last run would otherwise stay behind.
    const kept = new Set(instances.map((i) => i.id));
    for (const old of state.registry?.instances ?? []) {
      if (!kept.has(old.id) && (await deregisterService(client, old.id))) this.log(`deregistered ${old.id} from Consul (no longer served here)`);
    }
    return instances;
  }

  /** Whether Consul still holds every instance (a dev or wiped agent forgets them); false = register again. */
  async present(instances: ReadonlyArray<{ id: string }>): Promise<boolean> {
    const client = this.client();
    for (const { id } of instances) {
      const res = await client.get(`/v1/agent/service/${pathSegment(id)}`, { accept: [404] });
      if (res.status === 404) return false;
    }
    return true;
  }

  /** The agent stops (not leaves): Consul's maintenance mode makes the instances critical until it resumes. */
  async maintenance(instances: ReadonlyArray<{ id: string }>): Promise<void> {
    const client = this.client();
    for (const { id } of instances) {
      await client.put(`/v1/agent/service/maintenance/${pathSegment(id)}`, undefined, { query: { enable: 'true', reason: MAINTENANCE_REASON }, accept: [404] });
    }
  }
}

/** `leave`: removes every instance (Consul removes each one's sidecar with it); returns the IDs it could not remove, with why. */
export async function deregisterFromConsul(registry: ConsulRegistryState, log: (m: string) => void): Promise<{ failed: string[]; error?: string }> {
  const ids = (registry.instances ?? []).map((i) => i.id);
  let client: ConsulClient;
  try {
    client = consulClientFor(registry);
  } catch (err) {
    return { failed: ids, error: (err as Error).message };
  }
  const failed: string[] = [];
  let error: string | undefined;
  for (const id of ids) {
    try {
      const removed = await deregisterService(client, id);
      log(removed ? `deregistered ${id} from Consul` : `${id} was no longer registered in Consul`);
    } catch (err) {
      failed.push(id);
      error ??= (err as Error).message;
    }
  }
  return error === undefined ? { failed } : { failed, error };
}

/** `status`: each instance's aggregated Consul health (passing, warning, critical, maintenance), or why it is unknown. */
export async function consulInstanceHealth(registry: ConsulRegistryState): Promise<string> {
  const ids = (registry.instances ?? []).map((i) => i.id);
  if (!ids.length) return 'not registered in Consul yet';
  try {
    const client = consulClientFor(registry);
    const parts: string[] = [];
    for (const id of ids) {
      // 200 passing, 429 warning, 503 critical (maintenance included), 404 unknown: the status is the body's.
      const res = await client.get<{ AggregatedStatus?: string }>(`/v1/agent/health/service/id/${pathSegment(id)}`, { accept: [404, 429, 503], timeoutMs: 3_000 });
      parts.push(`${id} ${res.status === 404 ? 'not registered' : (res.body?.AggregatedStatus ?? `HTTP ${res.status}`)}`);
    }
    return `${parts.join(', ')} (Consul's check)`;
  } catch (err) {
    return `unknown: ${(err as Error).message}`;
  }
}
