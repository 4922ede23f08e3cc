// The listener lookups the connection path needs, compiled once per set of
// listener and mesh resources (cached by the state's listenerGeneration, so a
// swap that changed listeners compiles afresh and old indexes are collected):
//  - outbound virtual listeners by original destination (port, then the most
//    specific destination address: longest prefix first, "any address" last,
//    as Envoy's filter chain match on the 15001 listener);
//  - inbound listeners by port (the inbound capture port looks them up by the
//    original destination port);
//  - the listeners the proxy binds itself (inbound and gateway);
//  - the mesh's outbound traffic policy (Istio's default ALLOW_ANY).
import { BlockList, isIP } from 'node:net';
import type { ListenerResource, MeshResource } from '../../core/model/proxy-config.ts';
import type { ProxyState } from '../config/proxy-state.ts';

export type OutboundTrafficPolicy = MeshResource['outboundTrafficPolicy'];

interface AddressMatch {
  /** -1 for "any address" (no destinationAddresses), else the prefix length. */
  prefix: number;
  /** Undefined for "any address". */
  block: BlockList | undefined;
  family: 'ipv4' | 'ipv6' | undefined;
  listener: ListenerResource;
}

export class ListenerIndex {
  /** Inbound listeners by port, whatever their protocol. */
  readonly inboundByPort: ReadonlyMap<number, ListenerResource>;
  /** Listeners a proxy binds a server for (inbound and gateway), by port. */
  readonly boundByPort: ReadonlyMap<number, ListenerResource>;
  readonly outboundTrafficPolicy: OutboundTrafficPolicy;
  private readonly outboundByPort: ReadonlyMap<number, readonly AddressMatch[]>;

  constructor(listeners: Iterable<ListenerResource>, policy: OutboundTrafficPolicy) {
    const inbound = new Map<number, ListenerResource>();
    const bound = new Map<number, ListenerResource>();
    const outbound = new Map<number, AddressMatch[]>();
    for (const l of listeners) {
      if (l.direction === 'outbound') {
        let list = outbound.get(l.port);
        if (list === undefined) outbound.set(l.port, (list = []));
        if (l.destinationAddresses === undefined || l.destinationAddresses.length === 0) {
          list.push({ prefix: -1, block: undefined, family: undefined, listener: l });
        } else {
          for (const cidr of l.destinationAddresses) {
            const match = parseAddressMatch(cidr, l);
            if (match !== undefined) list.push(match);
          }
        }
        continue;
      }
      if (l.direction === 'inbound') inbound.set(l.port, l);
      bound.set(l.port, l);
    }
    // Most specific first; equal prefixes in name order so the pick never depends on arrival order.
    for (const list of outbound.values()) list.sort((a, b) => b.prefix - a.prefix || (a.listener.name < b.listener.name ? -1 : a.listener.name > b.listener.name ? 1 : 0));
    this.inboundByPort = inbound;
    this.boundByPort = bound;
    this.outboundByPort = outbound;
    this.outboundTrafficPolicy = policy;
  }

  /** The outbound virtual listener covering an original destination, or undefined. */
  outbound(address: string, port: number): ListenerResource | undefined {
    const list = this.outboundByPort.get(port);
    if (list === undefined) return undefined;
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    for (const m of list) {
      if (m.block === undefined) return m.listener;
      if (m.family === family && m.block.check(address, family)) return m.listener;
    }
    return undefined;
  }
}

function parseAddressMatch(cidr: string, listener: ListenerResource): AddressMatch | undefined {
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const block = new BlockList();
  block.addSubnet(address, prefix, family);
  return { prefix, block, family, listener };
}

// Keyed by the state's listener generation: an update that changed only
// clusters or endpoints keeps the index (compiling thousands of outbound
// address matches per endpoint health change would make each push O(config)).
const cache = new WeakMap<object, ListenerIndex>();

/** The index of a state, built on first use. */
export function listenerIndex(state: ProxyState): ListenerIndex {
  let index = cache.get(state.listenerGeneration);
  if (index === undefined) {
    const listeners: ListenerResource[] = [];
    let policy: OutboundTrafficPolicy = 'ALLOW_ANY';
    for (const r of state.resources.values()) {
      if (r.type === 'listener') listeners.push(r);
      else if (r.type === 'mesh' && r.outboundTrafficPolicy === 'REGISTRY_ONLY') policy = 'REGISTRY_ONLY';
    }
    index = new ListenerIndex(listeners, policy);
    cache.set(state.listenerGeneration, index);
  }
  return index;
}
