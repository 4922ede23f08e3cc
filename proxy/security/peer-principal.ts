// The hook through which authorization and telemetry learn who the caller
// is: the SPIFFE ID verified when this proxy terminated mTLS on the request's
// connection. It is a hook rather than an import so security does not depend
// on the TLS code (proxy/tls/tls-peer-principal.ts installs the reader; tests
// install their own). Without it every request counts as plaintext:
// principals and namespaces rules do not match, notPrincipals/notNamespaces
// do — Istio's behaviour for plaintext traffic in PERMISSIVE mode.
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
