// What the proxies need to run mTLS, compiled from the registry and the rules:
//  - per cluster, DestinationRule trafficPolicy.tls (after Istio's policy
//    merge) as UpstreamTls, with the SPIFFE IDs the service's workloads run
//    as for secure naming (plus a ServiceEntry's subjectAltNames);
//  - per endpoint, whether it runs a Jibe proxy that takes mesh mTLS (Istio's
//    `security.istio.io/tlsMode: istio` label, which sidecar injection and
//    `jibe up` put on workloads whose sidecar holds a certificate);
//  - per gateway server, `tls` SIMPLE / MUTUAL as the listener's ListenerTls,
//    with a `credentialName` resolved from the operators' stored credentials.
import type { BuildContext } from './build-context.ts';
import { compareStrings } from './mesh-match.ts';
import { credentialKey } from '../model/credential.ts';
import type { TlsCredential } from '../model/credential.ts';
import type { Server } from '../model/networking.ts';
import type { ListenerTls, UpstreamTls } from '../model/proxy-config.ts';
import type { Workload } from '../model/workload.ts';

/** Istio's label for a workload whose sidecar accepts mesh mTLS. */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

/** Whether auto mTLS may dial this workload with mesh mTLS. */
export function workloadTakesMtls(w: Workload): boolean {
  return w.proxy !== undefined && w.labels?.[TLS_MODE_LABEL] === 'istio';
}

/** Distinct SPIFFE IDs of the workloads serving `host`, sorted (the secure naming list). */
export function serviceIdentities(ctx: BuildContext, host: string): string[] {
  const ids = new Set<string>();
  for (const w of ctx.snapshot.workloadsByService.get(host) ?? []) if (w.identity) ids.add(w.identity);
  const service = ctx.snapshot.services.get(host) as { subjectAltNames?: string[] } | undefined;
  for (const san of service?.subjectAltNames ?? []) ids.add(san);
  return [...ids].sort(compareStrings);
}

/**
 * DestinationRule `tls` (ClientTLSSettings) for one cluster. No tls = AUTO
 * (auto mTLS); ISTIO_MUTUAL and AUTO check the workloads' identities unless
 * the rule names its own subjectAltNames.
 */
export function compileUpstreamTls(tls: Record<string, unknown> | undefined, identities: string[]): UpstreamTls | undefined {
  const mode = typeof tls?.mode === 'string' ? tls.mode : 'AUTO';
  const str = (k: string): string | undefined => (typeof tls?.[k] === 'string' && tls[k] !== '' ? (tls[k] as string) : undefined);
  const names = Array.isArray(tls?.subjectAltNames) ? (tls.subjectAltNames as unknown[]).filter((s): s is string => typeof s === 'string') : undefined;
  switch (mode) {
    case 'DISABLE':
      return { mode: 'DISABLE' };
    case 'AUTO':
    case 'ISTIO_MUTUAL': {
      const out: UpstreamTls = { mode: mode as 'AUTO' | 'ISTIO_MUTUAL' };
      const sans = names?.length ? names : identities;
      if (sans.length > 0) out.subjectAltNames = sans;
      const sni = str('sni');
      if (sni !== undefined) out.sni = sni;
      return mode === 'AUTO' && out.subjectAltNames === undefined && sni === undefined ? undefined : out;
    }
    case 'SIMPLE':
    case 'MUTUAL': {
      const out: UpstreamTls = { mode };
      for (const k of ['caCertificates', 'clientCertificate', 'privateKey', 'sni'] as const) {
        const v = str(k);
        if (v !== undefined) out[k] = v;
      }
      if (names?.length) out.subjectAltNames = names;
      if (tls?.insecureSkipVerify === true) out.insecureSkipVerify = true;
      return out;
    }
    default:
      return undefined;
  }
}

/**
 * Finds a server's `credentialName` as Istio does: in the gateway workload's
 * namespace first (where Istio's gateway reads its Secrets), then in the
 * Gateway resource's own (Kubernetes Gateway API semantics), so a credential
 * beside either works. For MUTUAL, the roots are the credential's `ca`, else
 * the companion credential `<name>-cacert` (Istio's convention).
 */
export interface CredentialLookup {
  credentials: ReadonlyMap<string, TlsCredential> | undefined;
  /** The gateway proxy's namespace. */
  proxyNamespace: string;
  /** The Gateway resource's namespace. */
  gatewayNamespace: string;
}

function findCredential(lookup: CredentialLookup, name: string): TlsCredential | undefined {
  const all = lookup.credentials;
  return all?.get(credentialKey(lookup.proxyNamespace, name)) ?? all?.get(credentialKey(lookup.gatewayNamespace, name));
}

/**
 * Gateway server tls SIMPLE / MUTUAL as the listener terminates it; undefined
 * for modes a listener does not terminate. A `credentialName` is inlined as
 * PEM (only this gateway's config carries it); a missing one leaves the
 * listener without a certificate, so the gateway refuses TLS on that port
 * and logs why, rather than serving plaintext.
 */
export function compileGatewayTls(server: Server, lookup?: CredentialLookup): ListenerTls | undefined {
  const tls = server.tls;
  const mode = tls?.mode;
  if (mode !== 'SIMPLE' && mode !== 'MUTUAL') return undefined;
  const out: ListenerTls = { mode };
  for (const k of ['serverCertificate', 'privateKey', 'caCertificates'] as const) {
    if (typeof tls?.[k] === 'string' && tls[k] !== '') out[k] = tls[k] as string;
  }
  const credentialName = typeof tls?.credentialName === 'string' && tls.credentialName !== '' ? tls.credentialName : undefined;
  if (credentialName !== undefined && lookup !== undefined) {
    const credential = findCredential(lookup, credentialName);
    if (credential !== undefined) {
      out.certificatePem = credential.cert;
      out.privateKeyPem = credential.key;
      const ca = credential.ca ?? findCredential(lookup, `${credentialName}-cacert`)?.cert;
      if (mode === 'MUTUAL' && ca !== undefined) out.caCertificatesPem = ca;
    }
  }
  if (Array.isArray(tls?.subjectAltNames) && tls.subjectAltNames.length > 0) out.subjectAltNames = (tls.subjectAltNames as unknown[]).filter((s): s is string => typeof s === 'string');
  if (tls?.minProtocolVersion === 'TLSV1_3') out.minProtocolVersion = 'TLSv1.3';
  return out;
}
