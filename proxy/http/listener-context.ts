// What the request path needs to know about the listener a request arrived on.
// One object per listener, read (never copied) per request.
import type { ProxyState } from '../config/proxy-state.ts';
import type { RouteTable } from '../router/route-table.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';

export type ListenerKind = 'outbound' | 'inbound' | 'gateway';

export interface ListenerContext {
  readonly kind: ListenerKind;
  /** Port the listener is bound to (route matches on `port` compare with it). */
  port: number;
  readonly scheme: 'http';
  /**
   * At the mesh edge (gateway) the proxy is the first hop it can trust: it
   * overwrites x-forwarded-proto instead of keeping what the client sent.
   */
  readonly edge: boolean;
  readonly stats: ProxyStats;
  readonly logger: ProxyLogger;
  /** Set while the proxy drains: responses carry `connection: close`. */
  draining: boolean;
  /** The route table for this listener in a given state (undefined: none configured, every request is NR). */
  routeTable(state: ProxyState): RouteTable | undefined;
}
