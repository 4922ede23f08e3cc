// Free-port discovery for the local mesh.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { JibeError } from '../../core/errors/errors.ts';

/**
 * Ports this process handed out, or checked for a caller that will bind them:
 * never handed out again. Between the check and the bind a port looks free,
 * so without this two picks of one `jibe up` (about forty ports) could return
 * the same port — a few percent of runs — and one of its two users would fail.
 */
const handedOut = new Set<number>();

/** Whether `port` can be bound on 127.0.0.1 right now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The kernel's ephemeral range (where outgoing connections take their local ports). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low > 0 && high >= low) return [low, high];
  } catch {
    // Not Linux: assume the IANA range.
  }
  return [49152, 65535];
}

/**
 * A port that is free on 127.0.0.1 now, for a process to bind a moment later.
 * Chosen below the kernel's ephemeral range: a port the OS handed out with
 * bind(0) lies inside that range, where any outgoing connection (a keep-alive
 * pool, a health check) may take it as its local port before the process
 * binds it — and keep it, so a restart fails too.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const top = Math.min(low, 65536);
  const bottom = Math.max(10000, top - 20000);
  if (top - bottom >= 1000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = bottom + Math.floor(Math.random() * (top - bottom));
      // Never one of the mesh's own well-known ports (15000–15099), which other processes bind by default.
      if (port >= 15000 && port < 15100) continue;
      if (handedOut.has(port)) continue;
      if (await canBind(port)) {
        handedOut.add(port);
        return port;
      }
    }
  }
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      handedOut.add(port);
      server.close(() => resolve(port));
    });
  });
}

/**
 * Fails with JIBE_ERR_PORT_IN_USE naming the port and its flag when it is taken.
 * A free port is the caller's from then on: `freePort` will not hand it out.
 */
export function ensurePortFree(port: number, flag: string, host = '127.0.0.1'): Promise<void> {
  handedOut.add(port);
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
