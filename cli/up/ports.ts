// Free-port discovery for the local mesh.
import net from 'node:net';
import { JibeError } from '../../core/errors/errors.ts';

/** A port the OS reports free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Fails with JIBE_ERR_PORT_IN_USE naming the port and its flag when it is taken. */
export function ensurePortFree(port: number, flag: string, host = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new JibeError('JIBE_ERR_PORT_IN_USE', `port ${port} is already in use`, { hint: `stop what listens there (is a local mesh already running?) or pass ${flag} <port>` })
          : err,
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}
