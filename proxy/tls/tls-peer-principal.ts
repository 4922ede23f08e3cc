// Tells authorization, rate limits and telemetry who the downstream peer is:
// the SPIFFE ID verified when this proxy terminated mesh mTLS on the
// request's connection (tagged on the decrypted socket), or nothing for
// plaintext. One property read per lookup, on the socket the request came on.
import type { Exchange } from '../http/exchange.ts';
import type { Http1ServerConnection } from '../http1/http1-server-connection.ts';
import type { Http2Downstream } from '../http2/http2-downstream.ts';
import { peerIdentityOf } from './tls-inbound.ts';

/** The verified mTLS identity of the connection `ex` arrived on. */
export function exchangePeerIdentity(ex: Exchange): string | undefined {
  const down = ex.down;
  if (down.httpVersion === 1) return peerIdentityOf((down as unknown as Http1ServerConnection<Exchange>).socket);
  // The session's socket is node's proxy object, which forwards property reads to the TLS socket.
  return peerIdentityOf((down as unknown as Http2Downstream<Exchange>).stream.session?.socket);
}

