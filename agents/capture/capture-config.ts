// Options of traffic capture, shared by the VM agent (`jibe agent join`) and
// the Kubernetes init container. Defaults are Istio's, so the ports and the
// proxy's UID/GID mean what an Istio user expects.
import { JibeError } from '../../core/errors/errors.ts';
import { parseCidr } from './capture-cidr.ts';
import type { Cidr } from './capture-cidr.ts';

export interface CaptureControlPlane {
  /** An IP address (v4 or v6); iptables cannot match host names, so resolve them first. */
  address: string;
  /** Only this TCP port is excluded when given; the whole address otherwise. */
  port?: number;
}

export interface CaptureDns {
  /** Redirect UDP and TCP port 53 to `port` (the proxy's DNS listener). */
  enabled: boolean;
  port: number;
}

export interface CaptureConfig {
  /** The proxy runs as this user; its own traffic is never captured (else it would loop). */
  proxyUid: number;
  proxyGid: number;
  /** Where captured inbound TCP goes (the proxy's inbound listener). */
  inboundPort: number;
  /** Where captured outbound TCP goes (the proxy's outbound listener). */
  outboundPort: number;
  /** Destination ports of inbound TCP to capture; '*' = every port. [] = no inbound capture. */
  includeInboundPorts: '*' | number[];
  /** Inbound ports never captured (the proxy's health and metrics ports by default). */
  excludeInboundPorts: number[];
  /** Outbound destinations to capture; '*' = all. [] = capture only `includeOutboundPorts`. */
  includeOutboundCidrs: '*' | string[];
  excludeOutboundCidrs: string[];
  /** Outbound ports captured whatever the destination address (unless excluded). */
  includeOutboundPorts: number[];
  excludeOutboundPorts: number[];
  /** The control plane stays reachable when the proxy is down (the agent renews certificates through it). */
  controlPlane?: CaptureControlPlane;
  /** Also install the rules with ip6tables. Turn on when the host has IPv6 addresses. */
  ipv6: boolean;
  dns: CaptureDns;
}

export const DEFAULT_CAPTURE_CONFIG: Readonly<CaptureConfig> = Object.freeze({
  proxyUid: 1337,
  proxyGid: 1337,
  inboundPort: 15006,
  outboundPort: 15001,
  includeInboundPorts: '*',
  // Proxy health (15021) and Prometheus metrics (15090) answer directly, as in Istio.
  excludeInboundPorts: [15021, 15090],
  includeOutboundCidrs: '*',
  excludeOutboundCidrs: [],
  includeOutboundPorts: [],
  excludeOutboundPorts: [],
  ipv6: false,
  dns: { enabled: false, port: 15053 },
} satisfies CaptureConfig);

/** The config after validation: CIDRs canonical and split by family, ports checked. */
export interface ResolvedCaptureConfig extends Omit<CaptureConfig, 'includeOutboundCidrs' | 'excludeOutboundCidrs' | 'controlPlane'> {
  includeOutboundCidrs: '*' | Cidr[];
  excludeOutboundCidrs: Cidr[];
  controlPlane?: { cidr: Cidr; port?: number };
}

export type CaptureOptions = Partial<Omit<CaptureConfig, 'dns'>> & { dns?: Partial<CaptureDns> };

/** Fills defaults and validates; throws JIBE_ERR_CAPTURE_CONFIG naming the first bad field. */
export function resolveCaptureConfig(options: CaptureOptions = {}): ResolvedCaptureConfig {
  const c: CaptureConfig = {
    ...DEFAULT_CAPTURE_CONFIG,
    ...stripUndefined(options),
    dns: { ...DEFAULT_CAPTURE_CONFIG.dns, ...stripUndefined(options.dns ?? {}) },
  } as CaptureConfig;
  checkId(c.proxyUid, 'proxyUid');
  checkId(c.proxyGid, 'proxyGid');
  checkPort(c.inboundPort, 'inboundPort');
  checkPort(c.outboundPort, 'outboundPort');
  checkPort(c.dns.port, 'dns.port');
  if (typeof c.ipv6 !== 'boolean') fail('ipv6', 'must be true or false');
  if (typeof c.dns.enabled !== 'boolean') fail('dns.enabled', 'must be true or false');
  const includeInboundPorts = c.includeInboundPorts === '*' ? '*' : checkPorts(c.includeInboundPorts, 'includeInboundPorts');
  const excludeInboundPorts = checkPorts(c.excludeInboundPorts, 'excludeInboundPorts');
  const includeOutboundPorts = checkPorts(c.includeOutboundPorts, 'includeOutboundPorts');
  const excludeOutboundPorts = checkPorts(c.excludeOutboundPorts, 'excludeOutboundPorts');
  const includeOutboundCidrs = c.includeOutboundCidrs === '*' ? '*' : checkCidrs(c.includeOutboundCidrs, 'includeOutboundCidrs');
  const excludeOutboundCidrs = checkCidrs(c.excludeOutboundCidrs, 'excludeOutboundCidrs');
  let controlPlane: ResolvedCaptureConfig['controlPlane'];
  if (c.controlPlane) {
    const cidr = parseCidr(c.controlPlane.address);
    if (!cidr || c.controlPlane.address.includes('/')) {
      fail('controlPlane.address', `"${c.controlPlane.address}" is not an IP address`, 'resolve the control plane host name to an address before installing capture');
    }
    if (c.controlPlane.port !== undefined) checkPort(c.controlPlane.port, 'controlPlane.port');
    controlPlane = { cidr: cidr!, port: c.controlPlane.port };
  }
  return {
    ...c,
    includeInboundPorts,
    excludeInboundPorts,
    includeOutboundPorts,
    excludeOutboundPorts,
    includeOutboundCidrs,
    excludeOutboundCidrs,
    controlPlane,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function fail(field: string, message: string, hint = 'fix the capture option named in the message'): never {
  throw new JibeError('JIBE_ERR_CAPTURE_CONFIG', `capture option ${field} ${message}`, { field, hint });
}

function checkId(value: unknown, field: string): void {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0xfffffffe) fail(field, `must be a numeric id, got ${JSON.stringify(value)}`);
}

function checkPort(value: unknown, field: string): void {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 65535) fail(field, `must be a port 1-65535, got ${JSON.stringify(value)}`);
}

function checkPorts(value: unknown, field: string): number[] {
  if (!Array.isArray(value)) fail(field, `must be a list of ports, got ${JSON.stringify(value)}`);
  (value as unknown[]).forEach((p, i) => checkPort(p, `${field}[${i}]`));
  return [...new Set(value as number[])];
}

function checkCidrs(value: unknown, field: string): Cidr[] {
  if (!Array.isArray(value)) fail(field, `must be a list of CIDRs or '*', got ${JSON.stringify(value)}`);
  const seen = new Set<string>();
  const out: Cidr[] = [];
  (value as unknown[]).forEach((entry, i) => {
    const cidr = typeof entry === 'string' ? parseCidr(entry.trim()) : undefined;
    if (!cidr) fail(`${field}[${i}]`, `"${String(entry)}" is not an address or CIDR (e.g. 10.0.0.0/8, fd00::/8)`);
    if (!seen.has(cidr.text)) out.push(cidr);
    seen.add(cidr.text);
  });
  return out;
}
