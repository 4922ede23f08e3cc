// Binding a listening socket with the proxy's error for a taken port, shared
// by every listener that binds (HTTP, bound tcp/auto listeners, the capture
// ports) so a taken port reads the same whichever kind it is.
import type { Server } from 'node:net';
import { JibeError } from '../../core/errors/errors.ts';

/** Binds `server`; resolves the bound port. @throws JibeError JIBE_ERR_PORT_IN_USE when taken or not permitted. */
export function bindServer(server: Server, name: string, address: string, port: number, ipv6Only = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.removeListener('listening', onListening);
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') {
        reject(
          new JibeError('JIBE_ERR_PORT_IN_USE', `port ${port} is in use`, {
            resource: `listener/${name}`,
            hint: err.code === 'EACCES' ? `binding ${address}:${port} is not permitted` : `another process holds ${address}:${port}`,
          }),
        );
      } else {
        reject(err);
      }
    };
    const onListening = (): void => {
      server.removeListener('error', onError);
      const bound = server.address();
      resolve(bound !== null && typeof bound === 'object' ? bound.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: address, port, exclusive: true, ipv6Only });
  });
}

/** Stops accepting; resolves once the port is released (open connections are the caller's to end). */
export function stopAccepting(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  server.close();
  return new Promise((resolve) => setImmediate(resolve));
}
