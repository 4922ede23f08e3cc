// The connection a request arrived on, for facts that belong to the
// connection rather than the request: the client's verified mTLS identity,
// the original destination iptables redirected it from.
import type { Socket } from 'node:net';
import type { Http1ServerConnection } from '../http1/http1-server-connection.ts';
import type { Http2Downstream } from '../http2/http2-downstream.ts';
import type { Exchange } from './exchange.ts';

export function downstreamSocket(ex: Exchange): Socket | undefined {
  const down = ex.down;
  if (down.httpVersion === 1) return (down as unknown as Http1ServerConnection<Exchange>).socket;
  return (down as unknown as Http2Downstream<Exchange>).stream.conn.socket;
}
