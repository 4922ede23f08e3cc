// A small HTTP endpoint beside the data path (the admin port, the Prometheus
// port): bound exclusively, a taken port a JibeError the operator can act on,
// and a close that does not wait for scrapers' keep-alive connections.
import http from '../http/node-http.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JibeError } from '../../core/errors/errors.ts';

export interface HttpEndpoint {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `handle` on address:port (0 = ephemeral).
 * @throws JibeError JIBE_ERR_PORT_IN_USE naming `what` and carrying `hint` when the port is taken.
 */
export async function startHttpEndpoint(
  address: string,
  port: number,
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  what: string,
  hint: string,
): Promise<HttpEndpoint> {
  const server = http.createServer(handle);
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new JibeError('JIBE_ERR_PORT_IN_USE', `${what} port ${port} is in use`, { hint }) : err),
    );
    server.listen({ host: address, port, exclusive: true }, resolve);
  });
  const bound = server.address();
  return {
    port: bound !== null && typeof bound === 'object' ? bound.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
