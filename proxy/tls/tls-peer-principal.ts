// Tells authorization, rate limits and telemetry who the downstream peer is:
// the SPIFFE ID verified when this proxy terminated mesh mTLS on the
// request's connection (tagged on the decrypted socket), or nothing for
// plaintext. One property read per lookup, on the socket the request came on.
import { downstreamSocket } from '../http/downstream-socket.ts';
import type { Exchange } from '../http/exchange.ts';
import { peerIdentityOf } from './tls-inbound.ts';

/** The verified mTLS identity of the connection `ex` arrived on. */
export function exchangePeerIdentity(ex: Exchange): string | undefined {
  return peerIdentityOf(downstreamSocket(ex));
}

