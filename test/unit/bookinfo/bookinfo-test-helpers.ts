// Starting BookInfo services (and fake peers) on ephemeral ports for the tests.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Running {
  url: string;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:0 and returns the base URL plus a close that drops open sockets. */
export async function listen(server: Server): Promise<Running> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface FakePeer extends Running {
  /** Headers of every request received, in order. */
  requests: Array<{ url: string; headers: IncomingHttpHeaders }>;
}

/** A peer that records what it receives and answers with `respond`. */
export async function fakePeer(respond: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakePeer> {
  const requests: FakePeer['requests'] = [];
  const running = await listen(
    createServer((req, res) => {
      requests.push({ url: req.url ?? '', headers: req.headers });
      respond(req, res);
    }),
  );
  return { ...running, requests };
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Closes everything started by a test, whatever failed. */
export async function closeAll(...items: Array<Running | undefined>): Promise<void> {
  await Promise.all(items.map((r) => r?.close()));
}
