// Binds and unbinds the config listeners (inbound, gateway) as updates come.
// New ports are bound before the new state is swapped in, so a port that
// cannot be bound fails the whole update (NACK) while the old config keeps
// serving; ports the new state drops are closed only after the swap, draining
// their in-flight requests. A listener is identified by its port: same port,
// address and direction means the same bound server, whatever its name.
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { Dispatch } from '../router/router.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import type { HttpListener, StateHolder } from './listener-http.ts';
import { createGatewayListener } from './listener-gateway.ts';
import { createInboundListener } from './listener-inbound.ts';

export interface ConfigListenerDeps {
  holder: StateHolder;
  dispatch: Dispatch;
  stats: ProxyStats;
  logger: ProxyLogger;
  /** How long a removed listener's in-flight requests may take. */
  drainTimeoutMs: number;
}

export interface ListenerTransaction {
  /** Call right after the new state is in place. */
  commit(): void;
  /** Call when the update is abandoned after prepare succeeded. */
  rollback(): Promise<void>;
}

function createListener(resource: ListenerResource, deps: ConfigListenerDeps): HttpListener {
  return resource.direction === 'gateway' ? createGatewayListener(resource, deps) : createInboundListener(resource, deps);
}

function sameBinding(listener: HttpListener, resource: ListenerResource): boolean {
  return listener.address === resource.address && listener.kind === resource.direction;
}

export class ListenerManager {
  private readonly deps: ConfigListenerDeps;
  private readonly bound = new Map<number, HttpListener>();

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
    const added: HttpListener[] = [];
    const replaced: HttpListener[] = [];
    try {
      for (const [port, active] of next.listenersByPort) {
        const existing = this.bound.get(port);
        if (existing !== undefined && sameBinding(existing, active.resource)) continue;
        if (existing !== undefined) {
          // Same port, other address or direction: the old server must let go of the port first.
          replaced.push(existing);
          this.bound.delete(port);
          await existing.close(0);
        }
        const listener = createListener(active.resource, this.deps);
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
          if (!next.listenersByPort.has(port)) {
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
  private async restore(replaced: HttpListener[]): Promise<void> {
    for (const old of replaced) {
      const active = this.deps.holder.current.listenersByPort.get(old.port);
      if (active === undefined) continue;
      const again = createListener(active.resource, this.deps);
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
