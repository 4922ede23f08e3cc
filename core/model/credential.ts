// An operator's TLS credential (Istio's `credentialName`: a Kubernetes TLS
// Secret), kept in the control plane's state store as a secret and compiled
// into the listeners of the gateways whose servers name it.

export interface TlsCredential {
  namespace: string;
  name: string;
  /** PEM certificate chain, leaf first (`tls.crt`). */
  cert: string;
  /** PEM private key (`tls.key`). */
  key: string;
  /** PEM roots client certificates must chain to, for MUTUAL servers (`ca.crt`). */
  ca?: string;
}

/** `<namespace>/<name>`, the key credentials are looked up by. */
export function credentialKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
