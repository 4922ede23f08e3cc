// The request as policies see it: Istio's attribute names (`source.ip`,
// `request.headers[x]`, `request.auth.claims[groups]`, …) over one exchange.
// Built only on listeners that carry policies, once per request, and shared
// by JWT, the authz evaluator and the policy adapters.
import type { Exchange } from '../http/exchange.ts';
import { peerPrincipal } from './peer-principal.ts';
import { unmapIpv4 } from '../http/client-address.ts';

/** What any connection, HTTP or not, tells policies about its transport (Istio's L4 attributes). */
export interface ConnectionFacts {
  /** Downstream peer address (IPv4-mapped IPv6 shown as IPv4, as Envoy does). */
  readonly sourceIp: string;
  /** mTLS peer identity without `spiffe://` (`cluster.local/ns/default/sa/sleep`); '' without mTLS. */
  readonly sourcePrincipal: string;
  readonly sourceNamespace: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  /** Server name the client asked for in its TLS handshake; '' when unknown. */
  readonly sni: string;
}

export class RequestAttributes implements ConnectionFacts {
  readonly ex: Exchange;
  /** Downstream peer address (IPv4-mapped IPv6 shown as IPv4, as Envoy does). */
  readonly sourceIp: string;
  readonly sourcePrincipal: string;
  readonly sourceNamespace: string;
  readonly destinationPort: number;
  destinationIp: string;
  // Not read from the downstream TLS socket yet: `connection.sni` rules never match a request.
  readonly sni = '';
  /** `iss/sub` of the verified JWT; '' when the request carries none. */
  requestPrincipal = '';
  /** Claims of the verified JWT. */
  claims: Record<string, unknown> | undefined = undefined;

  constructor(ex: Exchange, destinationPort: number) {
    this.ex = ex;
    this.sourceIp = unmapIpv4(ex.down.remoteAddress);
    this.sourcePrincipal = sourcePrincipalOf(peerPrincipal(ex));
    this.sourceNamespace = namespaceOfPrincipal(this.sourcePrincipal);
    this.destinationPort = destinationPort;
    this.destinationIp = '';
  }

  get method(): string {
    return this.ex.method;
  }

  get path(): string {
    return this.ex.path;
  }

  /** Authority without the port, lower case (Istio matches hosts case-insensitively). */
  get host(): string {
    const a = this.ex.authority.toLowerCase();
    const colon = a.lastIndexOf(':');
    return colon > 0 && a.indexOf(']', colon) < 0 && /^\d+$/.test(a.slice(colon + 1)) ? a.slice(0, colon) : a;
  }

  header(name: string): string | undefined {
    return this.ex.header(name);
  }

  /** A claim by path (`['groups']`, `['realm', 'roles']`): strings and string lists as a list; undefined when absent. */
  claim(path: readonly string[]): string[] | undefined {
    let v: unknown = this.claims;
    for (const p of path) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
      v = (v as Record<string, unknown>)[p];
    }
    if (typeof v === 'string') return [v];
    if (typeof v === 'number' || typeof v === 'boolean') return [String(v)];
    if (Array.isArray(v)) return v.filter((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean').map(String);
    return undefined;
  }

  /**
   * Values of an attribute by Istio key (plus `request.method`, `request.path`,
   * `request.host` for adapters); an absent attribute yields [].
   */
  values(base: string, args: readonly string[]): string[] {
    switch (base) {
      case 'request.headers': {
        const v = this.header(args[0].toLowerCase());
        return v === undefined ? [] : [v];
      }
      case 'request.auth.principal':
        return this.requestPrincipal === '' ? [] : [this.requestPrincipal];
      case 'request.auth.audiences':
        return this.claim(['aud']) ?? [];
      case 'request.auth.presenter':
        return this.claim(['azp']) ?? [];
      case 'request.auth.claims':
        return this.claim(args) ?? [];
      case 'request.method':
        return [this.method];
      case 'request.path':
        return [this.path];
      case 'request.host':
        return [this.host];
      default:
        return connectionValues(this, base);
    }
  }
}

/** Values of an L4 attribute by Istio key; [] for an absent one or a key that is not L4. */
export function connectionValues(a: ConnectionFacts, base: string): string[] {
  switch (base) {
    case 'source.ip':
    case 'remote.ip':
      return [a.sourceIp];
    case 'source.namespace':
      return a.sourceNamespace === '' ? [] : [a.sourceNamespace];
    case 'source.principal':
      return a.sourcePrincipal === '' ? [] : [a.sourcePrincipal];
    case 'destination.ip':
      return a.destinationIp === '' ? [] : [a.destinationIp];
    case 'destination.port':
      return [String(a.destinationPort)];
    case 'connection.sni':
      return a.sni === '' ? [] : [a.sni];
    default:
      return [];
  }
}

/** Istio's `source.principal` of a verified SPIFFE ID: the ID without `spiffe://`; '' for a plaintext peer. */
export function sourcePrincipalOf(spiffeId: string | undefined): string {
  if (spiffeId === undefined) return '';
  return spiffeId.startsWith('spiffe://') ? spiffeId.slice(9) : spiffeId;
}

/** The namespace a principal (`td/ns/x/sa/y`) names; '' when it names none. */
export function namespaceOfPrincipal(principal: string): string {
  const ns = /\/ns\/([^/]+)\//.exec(principal);
  return ns === null ? '' : ns[1];
}

