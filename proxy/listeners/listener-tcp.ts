// A config listener the proxy binds itself whose protocol is `tcp` or `auto`
// (an inbound listener in local mode, a gateway TCP port): each connection is
// served per the listener's current config, read from the running state at
// accept time, so a change of tcpRoute needs no rebind.
import net from 'node:net';
import type { Server, Socket } from 'node:net';
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import type { ListenerKind } from '../http/listener-context.ts';
import { bindServer, stopAccepting } from './listener-bind.ts';
import { ConnectionRouter } from './listener-connection.ts';
import type { StateHolder } from './listener-http.ts';
import { listenerIndex } from './listener-index.ts';
import type { ConfigListenerDeps } from './listener-manager.ts';

export class TcpListener {
  readonly kind: ListenerKind;
  readonly name: string;
  readonly address: string;
  port: number;
  readonly server: Server;
  private readonly holder: StateHolder;
  private readonly router: ConnectionRouter;
  private readonly sockets = new Set<Socket>();
  private closing: Promise<void> | undefined;

  constructor(resource: ListenerResource, deps: ConfigListenerDeps) {
    this.kind = resource.direction;
    this.name = resource.name;
    this.address = resource.address;
    this.port = resource.port;
    this.holder = deps.holder;
    this.router = new ConnectionRouter({
      name: resource.name,
      holder: deps.holder,
      dispatch: deps.dispatch,
      stats: deps.stats,
      logger: deps.logger,
      drainTimeoutMs: deps.drainTimeoutMs,
      tlsGate: deps.tlsGate,
    });
    // pauseOnConnect: nothing is read before the connection's fate is decided.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    this.server.on('connection', (socket: Socket) => this.onConnection(socket));
    this.server.on('error', (err: Error) => deps.logger.error({ listener: this.name, err: err.message }, 'listener error'));
  }

  /** @throws JibeError JIBE_ERR_PORT_IN_USE */
  async listen(): Promise<number> {
    this.port = await bindServer(this.server, this.name, this.address, this.port);
    return this.port;
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const resource = listenerIndex(this.holder.current).boundByPort.get(this.port);
    if (resource === undefined || resource.protocol === 'http') {
      // The config moved on between accept and now; the manager is about to close us.
      socket.destroy();
      return;
    }
    this.router.route(resource, socket);
  }

  /** Stops accepting, lets connections run until `deadlineMs`, then cuts them. Idempotent. */
  close(deadlineMs: number): Promise<void> {
    this.closing ??= (async () => {
      await stopAccepting(this.server);
      await this.router.close(deadlineMs);
      for (const s of this.sockets) s.destroy();
    })();
    return this.closing;
  }
}
