// Binds and unbinds the config listeners (inbound, gateway) as updates come:
// an HTTP server for `http` listeners, a TCP server (relay or sniff) for
// `tcp` and `auto` ones. With inbound capture on, inbound listeners are
// reached through the capture port by original destination and not bound.
// New ports are bound before the new state is swapped in, so a port that
// cannot be bound fails the whole update (NACK) while the old config keeps
// serving; ports the new state drops are closed only after the swap, draining
// their in-flight requests. A listener is identified by its port: same port,
// address and direction means the same bound server, whatever its name.
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import type { ListenerKind } from '../http/listener-context.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { Dispatch } from '../router/router.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import type { TlsGate } from '../tls/tls-gate.ts';
import { HttpListener } from './listener-http.ts';
import type { StateHolder } from './listener-http.ts';
import { createGatewayListener } from './listener-gateway.ts';
import { createInboundListener } from './listener-inbound.ts';
import { listenerIndex } from './listener-index.ts';
import { TcpListener } from './listener-tcp.ts';

export interface ConfigListenerDeps {
  holder: StateHolder;
  dispatch: Dispatch;
  stats: ProxyStats;
  logger: ProxyLogger;
  /** How long a removed listener's in-flight requests may take. */
  drainTimeoutMs: number;
  /** False when inbound capture serves inbound listeners (they are not bound then). */
  bindInbound?: boolean;
  /** TLS termination on inbound (mesh mTLS) and gateway (operator TLS) listeners. */
  tlsGate?: TlsGate;
}

/** A bound config listener, HTTP or TCP. */
export interface BoundListener {
  readonly kind: ListenerKind;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  listen(): Promise<number>;
  close(deadlineMs: number): Promise<void>;
}

export interface ListenerTransaction {
  /** Call right after the new state is in place. */
  commit(): void;
  /** Call when the update is abandoned after prepare succeeded. */
  rollback(): Promise<void>;
}

function createListener(resource: ListenerResource, deps: ConfigListenerDeps): BoundListener {
  if (resource.protocol !== 'http') return new TcpListener(resource, deps);
  return resource.direction === 'gateway' ? createGatewayListener(resource, deps) : createInboundListener(resource, deps);
}

function sameBinding(listener: BoundListener, resource: ListenerResource): boolean {
  return listener.address === resource.address && listener.kind === resource.direction && listener instanceof HttpListener === (resource.protocol === 'http');
}

/** The listeners of `state` this manager binds, by port. */
function toBind(state: ProxyState, deps: ConfigListenerDeps): Map<number, ListenerResource> {
  const out = new Map<number, ListenerResource>();
  for (const [port, l] of listenerIndex(state).boundByPort) {
    if (l.direction === 'inbound' && deps.bindInbound === false) continue;
    // An HTTP listener serves with its route table; without one it has nothing to serve.
    if (l.protocol === 'http' && !state.listenersByPort.has(port)) continue;
    out.set(port, l);
  }
  return out;
}

export class ListenerManager {
  private readonly deps: ConfigListenerDeps;
  private readonly bound = new Map<number, BoundListener>();

  constructor(deps: ConfigListenerDeps) {
    this.deps = deps;
  }

  /** Bound ports by listener name, for status and tests. */
  ports(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.bound.values()) out[l.name] = l.port;
    return out;
  }

  /**
   * Binds every listener `next` has that is not bound yet.
   * @throws JibeError JIBE_ERR_PORT_IN_USE; nothing is left bound by this call then.
   */
  async prepare(next: ProxyState): Promise<ListenerTransaction> {
    const added: BoundListener[] = [];
    const replaced: BoundListener[] = [];
    const wanted = toBind(next, this.deps);
    try {
      for (const [port, resource] of wanted) {
        const existing = this.bound.get(port);
        if (existing !== undefined && sameBinding(existing, resource)) continue;
        if (existing !== undefined) {
          // Same port, other address or direction: the old server must let go of the port first.
          replaced.push(existing);
          this.bound.delete(port);
          await existing.close(0);
        }
        const listener = createListener(resource, this.deps);
        await listener.listen();
        added.push(listener);
      }
    } catch (err) {
      await Promise.all(added.map((l) => l.close(0)));
      await this.restore(replaced);
      throw err;
    }
    return {
      commit: () => {
        for (const l of added) this.bound.set(l.port, l);
        for (const [port, l] of this.bound) {
          if (!wanted.has(port)) {
            this.bound.delete(port);
            void l.close(this.deps.drainTimeoutMs);
          }
        }
      },
      rollback: async () => {
        await Promise.all(added.map((l) => l.close(0)));
        await this.restore(replaced);
      },
    };
  }

  /** Re-binds listeners closed for a replacement that did not happen (best effort). */
  private async restore(replaced: BoundListener[]): Promise<void> {
    const current = toBind(this.deps.holder.current, this.deps);
    for (const old of replaced) {
      const resource = current.get(old.port);
      if (resource === undefined) continue;
      const again = createListener(resource, this.deps);
      try {
        await again.listen();
        this.bound.set(again.port, again);
      } catch (err) {
        this.deps.logger.error({ listener: old.name, port: old.port, err: (err as Error).message }, 'could not re-bind listener after a failed update');
      }
    }
  }

  /** Drains and closes every listener. */
  async close(deadlineMs: number): Promise<void> {
    const all = [...this.bound.values()];
    this.bound.clear();
    await Promise.all(all.map((l) => l.close(deadlineMs)));
  }
}
