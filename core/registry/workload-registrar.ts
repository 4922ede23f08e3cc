// WorkloadRegistrar: workloads that join the mesh by calling the control plane
// (VMs, the local mesh of `jibe up`) rather than being discovered on a platform.
import { JibeError } from '../errors/errors.ts';
import { protocolFromPort } from '../model/service.ts';
import type { Protocol } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';

export interface WorkloadRegistration {
  name: string;
  namespace?: string;
  address: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
  /** Services this workload serves: `port` is the service port, `targetPort` the app's (default: same). */
  services: Array<{ name: string; port: number; targetPort?: number; portName?: string; protocol?: Protocol }>;
  proxy?: { inboundPorts?: Record<number, number> };
  locality?: Workload['locality'];
  health?: Workload['health'];
  /** Host facts a VM's node agent reports. */
  host?: Workload['host'];
}

export interface WorkloadRegistrar {
  register(registration: WorkloadRegistration): Promise<Workload>;
  deregister(namespace: string, name: string): Promise<boolean>;
  setHealth(namespace: string, name: string, health: Workload['health']): Promise<void>;
  list(): Promise<Workload[]>;
  /**
   * Registrations a node agent keeps alive (it reports health on a heartbeat)
   * and when each last reported, ms since the epoch; for `jibe analyze`'s
   * stale check. Absent on registrars without heartbeats.
   */
  heartbeats?(): Array<{ namespace: string; name: string; lastSeen: number }>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function invalid(field: string, message: string, hint?: string): JibeError {
  return new JibeError('JIBE_ERR_WORKLOAD_INVALID', message, { field, hint });
}

function isPort(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
}

/** Checks a registration from the API; returns every problem found (empty = valid). */
export function validateRegistration(input: unknown): JibeError[] {
  const errors: JibeError[] = [];
  if (typeof input !== 'object' || input === null) return [invalid('', 'a workload registration must be a JSON object')];
  const r = input as Partial<WorkloadRegistration>;
  if (typeof r.name !== 'string' || !DNS_LABEL.test(r.name)) errors.push(invalid('name', `name ${JSON.stringify(r.name)} is not a DNS label`, 'use lower-case letters, digits and -'));
  if (r.namespace !== undefined && (typeof r.namespace !== 'string' || !DNS_LABEL.test(r.namespace))) errors.push(invalid('namespace', `namespace ${JSON.stringify(r.namespace)} is not a DNS label`));
  if (typeof r.address !== 'string' || r.address.length === 0) errors.push(invalid('address', 'address is required (the IP peers dial)'));
  if (r.serviceAccount !== undefined && (typeof r.serviceAccount !== 'string' || !DNS_LABEL.test(r.serviceAccount))) errors.push(invalid('serviceAccount', 'serviceAccount must be a DNS label'));
  if (!Array.isArray(r.services)) errors.push(invalid('services', 'services must be a list of {name, port}'));
  else {
    r.services.forEach((s, i) => {
      if (!s || typeof s.name !== 'string' || !DNS_LABEL.test(s.name)) errors.push(invalid(`services[${i}].name`, 'service name must be a DNS label'));
      if (!isPort(s?.port)) errors.push(invalid(`services[${i}].port`, `port ${JSON.stringify(s?.port)} must be 1-65535`));
      if (s?.targetPort !== undefined && !isPort(s.targetPort)) errors.push(invalid(`services[${i}].targetPort`, 'targetPort must be 1-65535'));
    });
  }
  for (const [k, v] of Object.entries(r.proxy?.inboundPorts ?? {})) {
    if (!isPort(Number(k)) || !isPort(v)) errors.push(invalid(`proxy.inboundPorts.${k}`, 'inbound ports map app port → listen port, both 1-65535'));
  }
  if (r.health !== undefined && r.health !== 'healthy' && r.health !== 'unhealthy') errors.push(invalid('health', 'health is healthy or unhealthy'));
  return errors;
}

export function portProtocol(service: WorkloadRegistration['services'][number]): Protocol {
  return service.protocol ?? protocolFromPort(service.portName ?? 'http');
}
