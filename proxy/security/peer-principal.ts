// Who the caller is, for authorization, rate limits and telemetry: the
// SPIFFE ID verified when this proxy terminated mutual TLS on the request's
// connection (proxy/tls tags the decrypted socket), or nothing for plaintext
// — then principals and namespaces rules do not match and
// notPrincipals/notNamespaces do, Istio's behaviour for plaintext traffic in
// PERMISSIVE mode. Read from the connection itself, so every TLS terminator
// (mesh mTLS, a gateway's MUTUAL server) reaches policies the same way.
export { exchangePeerIdentity as peerPrincipal } from '../tls/tls-peer-principal.ts';
