// Host facts the agent registers with its workload (hostname, OS, interfaces
// and addresses, from `systeminformation`) and the address peers dial: the
// `--address` given, else the first IPv4 address of the default-route
// interface, else the first external IPv4 address.
import os from 'node:os';
import type { HostFacts } from '../../core/model/workload.ts';

export interface HostFactsResult {
  facts: HostFacts;
  primaryAddress: string | undefined;
}

/** A VM's view of itself; loaded lazily, since systeminformation is large. */
export async function collectHostFacts(): Promise<HostFactsResult> {
  const si = (await import('systeminformation')).default;
  const [osInfo, interfaces, defaultIface] = await Promise.all([
    si.osInfo().catch(() => undefined),
    si.networkInterfaces().catch(() => []),
    si.networkInterfaceDefault().catch(() => ''),
  ]);
  const list = (Array.isArray(interfaces) ? interfaces : [interfaces]).filter((i) => i && !i.internal);
  const facts: HostFacts = {
    hostname: osInfo?.hostname || os.hostname(),
    ...(osInfo ? { os: `${osInfo.platform} ${osInfo.distro} ${osInfo.release} (${osInfo.arch})`.replace(/\s+/g, ' ').trim() } : {}),
    interfaces: list.map((i) => ({ name: i.iface, addresses: [i.ip4, i.ip6].filter((a): a is string => typeof a === 'string' && a !== '') })),
    addresses: [...new Set(list.flatMap((i) => [i.ip4, i.ip6]).filter((a): a is string => typeof a === 'string' && a !== ''))],
  };
  const preferred = list.find((i) => i.iface === defaultIface && i.ip4) ?? list.find((i) => i.ip4);
  return { facts, primaryAddress: preferred?.ip4 || undefined };
}

/** A workload name from the host name: lower-case DNS label. */
export function workloadNameFromHost(hostname: string): string {
  const label = hostname.toLowerCase().split('.')[0].replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return label || 'vm';
}
