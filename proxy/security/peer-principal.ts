// The hook through which authorization learns who the caller is. The source
// principal is the SPIFFE ID of the client's mTLS certificate; until inbound
// mTLS is wired (the mTLS work sets `setPeerPrincipalSource`), there is no
// verified peer and every request counts as plaintext: principals and
// namespaces rules do not match, notPrincipals/notNamespaces do — exactly
// Istio's behaviour for plaintext traffic in PERMISSIVE mode.
import type { Exchange } from '../http/exchange.ts';

type PeerPrincipalSource = (ex: Exchange) => string | undefined;

let source: PeerPrincipalSource = () => undefined;

/** The verified SPIFFE ID of the downstream peer (`spiffe://td/ns/x/sa/y`), or undefined for plaintext. */
export function peerPrincipal(ex: Exchange): string | undefined {
  return source(ex);
}

/** Installed by the mTLS listener code: how to read the peer certificate's identity from an exchange. */
export function setPeerPrincipalSource(fn: PeerPrincipalSource): void {
  source = fn;
}
