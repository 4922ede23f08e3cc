// AuthorizationPolicy on inbound TCP connections, Istio's L4 RBAC: decided
// once when a relayed connection starts (after mesh TLS was terminated, so
// the verified peer is known), from L4 attributes only — source IP and
// principal, namespace, destination IP/port, SNI. A denied connection is
// reset before a byte reaches the app, counted, logged with the policy, and
// recorded on the session; AUDIT only records. CUSTOM policies are skipped
// on TCP (see compileAuthzL4) and said so once per listener config.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import { compileAuthzL4, evaluateAuthz, matchingAudit } from './authz-evaluator.ts';
import type { AuthzAttributes, AuthzEngine } from './authz-evaluator.ts';
import { connectionValues, namespaceOfPrincipal, sourcePrincipalOf } from './request-attributes.ts';
import { unmapIpv4 } from '../http/client-address.ts';
import type { ConnectionFacts } from './request-attributes.ts';

/** What decided a TCP connection (on `TcpSession.authz`). */
export interface ConnectionAuthzRecord {
  /** `AuthorizationPolicy/ns/name` that decided; undefined when none did (no ALLOW matched, or nothing to match). */
  policy: string | undefined;
  result: 'allowed' | 'denied';
  /** Matching AUDIT policy. */
  audit?: string;
}

/** A connection as L4 policies see it. */
export class ConnectionAttributes implements AuthzAttributes, ConnectionFacts {
  readonly sourceIp: string;
  readonly sourcePrincipal: string;
  readonly sourceNamespace: string;
  readonly destinationPort: number;
  readonly destinationIp: string;
  readonly sni: string;
  // HTTP-only attributes: absent on a TCP connection.
  readonly requestPrincipal = '';
  readonly method = '';
  readonly path = '';
  readonly host = '';

  /** `peer`: the verified SPIFFE ID of the terminated mesh TLS (undefined for plaintext). */
  constructor(socket: Socket, peer: string | undefined, destinationPort: number) {
    this.sourceIp = unmapIpv4(socket.remoteAddress ?? '');
    this.sourcePrincipal = sourcePrincipalOf(peer);
    this.sourceNamespace = namespaceOfPrincipal(this.sourcePrincipal);
    this.destinationPort = destinationPort;
    this.destinationIp = unmapIpv4(socket.localAddress ?? '');
    const servername = (socket as Partial<TLSSocket>).servername;
    this.sni = typeof servername === 'string' ? servername : '';
  }

  values(base: string): string[] {
    return connectionValues(this, base);
  }
}

interface ListenerL4Authz {
  engine: AuthzEngine;
  destinationPort: number;
}

const compiled = new WeakMap<ListenerResource, ListenerL4Authz>();

/**
 * The L4 engine of a listener resource, compiled once per resource object.
 * @throws Error naming the policy when a rule cannot be compiled.
 */
export function listenerL4Authz(r: ListenerResource, logger: ProxyLogger): ListenerL4Authz | undefined {
  if (r.authz === undefined) return undefined;
  let s = compiled.get(r);
  if (s === undefined) {
    s = { engine: compileAuthzL4(r.authz), destinationPort: r.authz.destinationPort };
    compiled.set(r, s);
    if (r.authz.custom.length > 0) {
      logger.warn(
        { listener: r.name, policies: r.authz.custom.map((p) => p.name) },
        'CUSTOM AuthorizationPolicy not enforced on TCP connections (as Istio: only an ext_authz gRPC provider applies to TCP, and Jibe policy adapters judge HTTP requests)',
      );
    }
  }
  return s;
}

/** For connections judged by another listener's policies (inbound passthrough to an undeclared port). */
export interface ConnectionAuthzOptions {
  /** `destination.port` and operation `ports` (default: the listener's workload port). */
  destinationPort?: number;
  /** Name for logs (default: the listener's). */
  name?: string;
}

/**
 * Decides a connection on an inbound listener with policies: undefined when
 * the listener has none (nothing to record), else the record — the caller
 * resets the connection when `result` is `denied`.
 */
export function authorizeConnection(
  r: ListenerResource,
  socket: Socket,
  peer: string | undefined,
  stats: ProxyStats,
  logger: ProxyLogger,
  options: ConnectionAuthzOptions = {},
): ConnectionAuthzRecord | undefined {
  const name = options.name ?? r.name;
  let l4: ListenerL4Authz | undefined;
  try {
    l4 = listenerL4Authz(r, logger);
  } catch (err) {
    // The config was validated at apply; a policy that still fails to compile must not open the port.
    stats.tcp_rbac_denied++;
    logger.error({ listener: name, err: (err as Error).message }, 'AuthorizationPolicy cannot be compiled for TCP: connection refused');
    return { policy: undefined, result: 'denied' };
  }
  if (l4 === undefined) return undefined;
  const a = new ConnectionAttributes(socket, peer, options.destinationPort ?? l4.destinationPort);
  const d = evaluateAuthz(l4.engine, a);
  const audit = l4.engine.audit.length ? matchingAudit(l4.engine, a) : undefined;
  const record: ConnectionAuthzRecord = { policy: d.policy, result: d.allowed ? 'allowed' : 'denied', ...(audit ? { audit } : {}) };
  if (!d.allowed) {
    stats.tcp_rbac_denied++;
    logger.info({ listener: name, sourceIp: a.sourceIp, sourcePrincipal: a.sourcePrincipal || '-', policy: d.policy ?? '-', reason: d.reason }, 'rbac connection denied');
  } else {
    stats.tcp_rbac_allowed++;
    if (audit !== undefined) logger.info({ listener: name, sourceIp: a.sourceIp, sourcePrincipal: a.sourcePrincipal || '-', audit, policy: d.policy }, 'authz audit');
  }
  return record;
}
