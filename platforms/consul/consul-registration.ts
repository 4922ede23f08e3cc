// Registering a service instance and its Jibe sidecar in the local Consul
// agent, as `consul connect envoy -sidecar-for` users do for Envoy: the
// instance with its health check, and a `connect-proxy` sidecar (Consul's own
// `Connect.SidecarService`, so Consul adds the sidecar's listening and alias
// checks and removes it with the instance) marked `jibe-sidecar=true`, which
// tells the registry to reach the instance through it with mesh mTLS.
import { JibeError } from '../../core/errors/errors.ts';
import { pathSegment } from './consul-client.ts';
import type { ConsulClient } from './consul-client.ts';
import { META_CAPTURE, META_NAMESPACE, META_PROTOCOL, META_SIDECAR, workloadName } from './consul-converters.ts';
import { isDns1123Label } from '../../core/config/names.ts';

/** Jibe's inbound capture port: a sidecar there receives redirected traffic for every app port. */
export const CAPTURE_PORT = 15006;

export interface ConsulServiceSpec {
  service: string;
  /** Default: `<service>-<port>`. */
  id?: string;
  port: number;
  /** Default: the node's address. */
  address?: string;
  tags?: string[];
  meta?: Record<string, string>;
  /** Mesh namespace (Meta `jibe-namespace`). */
  namespace?: string;
  protocol?: string;
  /** `http://…` / `https://…` (HTTP check) or `tcp://host:port`. */
  check?: string;
  checkInterval?: string;
  /** Default 2s. */
  checkTimeout?: string;
  /** Consecutive failures before the check turns critical (Consul's FailuresBeforeCritical; default 1). */
  checkFailures?: number;
  /** Consecutive successes before it passes again (Consul's SuccessBeforePassing; default 1). */
  checkSuccesses?: number;
  /** The Jibe sidecar: its inbound port (CAPTURE_PORT = traffic capture), or false for none. */
  sidecar?: false | { port?: number };
}

/** What Consul accepts as a Meta key. */
export const META_KEY = /^[A-Za-z0-9_-]{1,64}$/;

function isPort(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
}

/** Checks a spec (from flags or a file); returns every problem. */
export function validateServiceSpec(spec: ConsulServiceSpec, where = ''): JibeError[] {
  const errors: JibeError[] = [];
  const bad = (field: string, message: string) => errors.push(new JibeError('JIBE_ERR_WORKLOAD_INVALID', message, { field: where + field }));
  if (typeof spec?.service !== 'string' || !isDns1123Label(spec.service)) bad('service', `service ${JSON.stringify(spec?.service)} is not a DNS label (lower-case letters, digits, -)`);
  if (!isPort(spec?.port)) bad('port', `port ${JSON.stringify(spec?.port)} must be 1-65535`);
  if (spec?.namespace !== undefined && !isDns1123Label(spec.namespace)) bad('namespace', `namespace ${JSON.stringify(spec.namespace)} is not a DNS label`);
  for (const key of Object.keys(spec?.meta ?? {})) if (!META_KEY.test(key)) bad(`meta.${key}`, `Consul Meta keys are 1-64 letters, digits, _ or -; ${JSON.stringify(key)} is not`);
  if (spec?.check !== undefined && !/^(https?|tcp):\/\/[^\s]+$/.test(spec.check)) bad('check', `check ${JSON.stringify(spec.check)} is not http://…, https://… or tcp://host:port`);
  for (const field of ['checkFailures', 'checkSuccesses'] as const) {
    const n = spec?.[field];
    if (n !== undefined && (!Number.isInteger(n) || n < 1)) bad(field, `${field} must be a positive integer`);
  }
  if (spec?.sidecar && spec.sidecar.port !== undefined && !isPort(spec.sidecar.port)) bad('sidecar.port', 'sidecar port must be 1-65535');
  return errors;
}

/** The body of `PUT /v1/agent/service/register` for a spec (pure). */
export function agentRegistration(spec: ConsulServiceSpec): Record<string, unknown> {
  const id = spec.id ?? `${spec.service}-${spec.port}`;
  const meta: Record<string, string> = { ...spec.meta };
  if (spec.namespace) meta[META_NAMESPACE] = spec.namespace;
  if (spec.protocol) meta[META_PROTOCOL] = spec.protocol;
  const body: Record<string, unknown> = { ID: id, Name: spec.service, Port: spec.port, Tags: spec.tags ?? [], Meta: meta };
  if (spec.address) body.Address = spec.address;
  if (spec.check) {
    const timing: Record<string, unknown> = { Interval: spec.checkInterval ?? '10s', Timeout: spec.checkTimeout ?? '2s' };
    // Consul counts from 0 (0 and 1 both mean "the first result counts"); omitted keeps the agent's default.
    if (spec.checkFailures !== undefined) timing.FailuresBeforeCritical = spec.checkFailures;
    if (spec.checkSuccesses !== undefined) timing.SuccessBeforePassing = spec.checkSuccesses;
    body.Check = spec.check.startsWith('tcp://')
      ? { Name: `${spec.service} TCP`, TCP: spec.check.slice('tcp://'.length), ...timing }
      : { Name: `${spec.service} HTTP`, HTTP: spec.check, ...timing };
  }
  if (spec.sidecar !== false) {
    const port = spec.sidecar?.port ?? CAPTURE_PORT;
    const sidecarMeta: Record<string, string> = { [META_SIDECAR]: 'true' };
    if (port === CAPTURE_PORT) sidecarMeta[META_CAPTURE] = 'true';
    body.Connect = { SidecarService: { Port: port, Meta: sidecarMeta, Proxy: { LocalServicePort: spec.port } } };
  }
  return body;
}

/** Registers the instance (and its sidecar) with the local agent; returns its ID and the workload name the mesh gives it. */
export async function registerService(client: ConsulClient, spec: ConsulServiceSpec): Promise<{ id: string; workload: string }> {
  const errors = validateServiceSpec(spec);
  if (errors.length) throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', `Consul registration of ${JSON.stringify(spec?.service)} is invalid`, { causes: errors });
  const body = agentRegistration(spec);
  await client.put('/v1/agent/service/register', body, { query: { 'replace-existing-checks': true } });
  // A registration token may lack agent:read; the workload name is then just not printed in full.
  const self = await client.get<{ Config?: { NodeName?: string; Datacenter?: string } }>('/v1/agent/self', { accept: [403] });
  const id = body.ID as string;
  const config = self.status === 200 ? self.body?.Config : undefined;
  return { id, workload: workloadName(id, config?.NodeName ?? '', config?.Datacenter ?? '') };
}

/** Removes the instance (Consul removes a sidecar registered with it too). False when the agent did not know it. */
export async function deregisterService(client: ConsulClient, id: string): Promise<boolean> {
  const response = await client.put(`/v1/agent/service/deregister/${pathSegment(id)}`, undefined, { accept: [404] });
  return response.status !== 404;
}
