// TLS settings that can work, for the two places Istio's API has them:
// DestinationRule `trafficPolicy.tls` (ClientTLSSettings: how a proxy dials)
// and Gateway `servers[].tls` (ServerTLSSettings: how a gateway terminates).
// Istio's own validation rules, plus refusals for what Jibe's proxy does not
// honour: a setting accepted and silently ignored (a CRL nobody checks, a
// cipher list nobody applies) is worse than a clear "not supported".
import net from 'node:net';
import type { Report } from './check-context.ts';
import { asArray, asObject, asString, listWords } from './check-context.ts';
import { hostProblem } from '../names.ts';

const FILE_FIELDS_CLIENT = ['clientCertificate', 'privateKey', 'caCertificates'] as const;
const FILE_FIELDS_SERVER = ['serverCertificate', 'privateKey', 'caCertificates'] as const;

/** The proxy reads these files on its own host; a relative path would depend on the directory it was started in. */
function checkAbsoluteFile(value: unknown, field: string, report: Report): void {
  if (typeof value !== 'string') return;
  if (value === '') report('JIBE_ERR_SCHEMA', field, 'must not be empty (omit the field instead)');
  else if (!value.startsWith('/')) report('JIBE_ERR_SCHEMA', field, `must be an absolute path on the proxy's host, not ${JSON.stringify(value)}`);
}

function present(tls: Record<string, unknown>, fields: readonly string[]): string[] {
  return fields.filter((f) => tls[f] !== undefined && tls[f] !== '');
}

function refuseUnsupported(tls: Record<string, unknown>, field: string, report: Report, fields: Record<string, string>): void {
  for (const [name, why] of Object.entries(fields)) {
    const v = tls[name];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    report('JIBE_ERR_SCHEMA', `${field}.${name}`, `${name} is not supported by Jibe's proxy (${why}); remove it`);
  }
}

function checkSans(value: unknown, field: string, report: Report, spiffeOnly: boolean): void {
  const seen = new Set<string>();
  asArray(value).forEach((san, i) => {
    if (typeof san !== 'string') return;
    const f = `${field}[${i}]`;
    if (san === '' || /\s/.test(san)) report('JIBE_ERR_SCHEMA', f, `invalid subject alt name ${JSON.stringify(san)}: empty or contains spaces`);
    else if (spiffeOnly && !/^spiffe:\/\/[^/\s]+\/.+/.test(san)) {
      report('JIBE_ERR_SCHEMA', f, `ISTIO_MUTUAL checks the server's SPIFFE ID, so ${JSON.stringify(san)} can never match; use spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
    }
    if (seen.has(san)) report('JIBE_ERR_DUPLICATE', f, `subject alt name ${JSON.stringify(san)} is listed twice`);
    seen.add(san);
  });
}

/** SNI is a DNS host name (RFC 6066: no IP literals, no port, no wildcard). */
function checkSni(value: unknown, field: string, report: Report): void {
  if (typeof value !== 'string') return;
  const why =
    value === ''
      ? 'must not be empty (omit it to send none)'
      : net.isIP(value) !== 0
        ? 'an IP address cannot be sent as SNI (RFC 6066); name the host instead'
        : value.includes('*')
          ? 'a wildcard cannot be sent as SNI; name one host'
          : value.includes(':')
            ? 'SNI carries no port'
            : hostProblem(value);
  if (why) report('JIBE_ERR_SCHEMA', field, `invalid sni ${JSON.stringify(value)}: ${why}`);
}

/** DestinationRule `tls` (at the policy, port or subset level). */
export function checkClientTls(value: unknown, field: string, report: Report): void {
  const tls = asObject(value);
  if (!tls) return;
  // Without a mode Jibe keeps auto mTLS (core/mesh/build-tls.ts), where sni and subjectAltNames still apply.
  const mode = asString(tls.mode);
  const mesh = mode === undefined || mode === 'ISTIO_MUTUAL';
  for (const f of [...FILE_FIELDS_CLIENT, 'caCrl']) checkAbsoluteFile(tls[f], `${field}.${f}`, report);
  checkSni(tls.sni, `${field}.sni`, report);
  checkSans(tls.subjectAltNames, `${field}.subjectAltNames`, report, mesh);
  refuseUnsupported(tls, field, report, {
    credentialName: 'a sidecar cannot read the control plane’s credentials; give clientCertificate, privateKey and caCertificates as files',
    caCrl: 'certificate revocation lists are not checked',
  });
  if (mesh) {
    // As Istio: the mesh supplies certificate, key and roots; files here mean the rule wanted MUTUAL.
    const what = mode ?? 'auto mTLS (no mode)';
    const files = present(tls, FILE_FIELDS_CLIENT);
    if (files.length) report('JIBE_ERR_SCHEMA', field, `${what} uses the workload certificate and the mesh roots: remove ${listWords(files)}, or set mode SIMPLE or MUTUAL to use your own files`);
    if (tls.insecureSkipVerify === true) report('JIBE_ERR_SCHEMA', `${field}.insecureSkipVerify`, `${what} always verifies the server identity (secure naming); remove insecureSkipVerify`);
  } else if (mode === 'MUTUAL') {
    const missing = ['clientCertificate', 'privateKey'].filter((f) => tls[f] === undefined || tls[f] === '');
    if (missing.length) report('JIBE_ERR_SCHEMA', field, `MUTUAL TLS presents a client certificate: it needs ${listWords(missing)} (absolute file paths on the proxy's host)`);
  } else if (mode === 'SIMPLE') {
    const client = present(tls, ['clientCertificate', 'privateKey']);
    if (client.length) report('JIBE_ERR_SCHEMA', field, `SIMPLE TLS presents no client certificate: remove ${listWords(client)}, or use mode MUTUAL`);
  } else if (mode === 'DISABLE') {
    const set = present(tls, [...FILE_FIELDS_CLIENT, 'sni']).concat(asArray(tls.subjectAltNames).length ? ['subjectAltNames'] : []);
    if (set.length) report('JIBE_ERR_SCHEMA', field, `mode DISABLE sends plaintext, so ${listWords(set)} would be ignored; remove them or set a TLS mode`);
  }
  if (tls.insecureSkipVerify === true && (mode === 'SIMPLE' || mode === 'MUTUAL')) {
    const verifying = present(tls, ['caCertificates']).concat(asArray(tls.subjectAltNames).length ? ['subjectAltNames'] : []);
    if (verifying.length) report('JIBE_ERR_SCHEMA', `${field}.insecureSkipVerify`, `insecureSkipVerify turns off the checks that ${listWords(verifying)} configure; keep one or the other`);
  }
}

const GATEWAY_TERMINATED = new Set(['SIMPLE', 'MUTUAL']);
const TLS_MIN_SUPPORTED = new Set(['TLS_AUTO', 'TLSV1_2', 'TLSV1_3']);

/** Gateway `servers[].tls`, given the server's port protocol (upper case). */
export function checkServerTls(server: Record<string, unknown>, field: string, report: Report): void {
  const protocol = asString(asObject(server.port)?.protocol)?.toUpperCase();
  const tls = asObject(server.tls);
  const tlsPort = protocol === 'HTTPS' || protocol === 'TLS';
  if (tlsPort && !tls) {
    report('JIBE_ERR_SCHEMA', `${field}.tls`, `a ${protocol} server needs tls settings (mode and a certificate)`);
    return;
  }
  if (!tls) return;
  const f = `${field}.tls`;
  const mode = asString(tls.mode);
  if (mode === undefined) {
    // httpsRedirect alone on a plain HTTP server is Istio's redirect to HTTPS.
    if (tlsPort) report('JIBE_ERR_SCHEMA', `${f}.mode`, `a ${protocol} server needs a tls mode (SIMPLE or MUTUAL)`);
    return;
  }
  if (!GATEWAY_TERMINATED.has(mode)) {
    const why =
      mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH'
        ? `${mode} relays the client's TLS by SNI to the backend, and Jibe's gateway serves HTTP and terminated TLS only`
        : mode === 'ISTIO_MUTUAL'
          ? 'ISTIO_MUTUAL on a gateway (mesh mTLS from other proxies) is not served by Jibe’s gateway'
          : 'OPTIONAL_MUTUAL (a client certificate asked for but not required) is not supported';
    report('JIBE_ERR_SCHEMA', `${f}.mode`, `${why}; use SIMPLE or MUTUAL with the gateway's certificate`);
    return;
  }
  if (protocol !== undefined && !tlsPort) {
    report('JIBE_ERR_SCHEMA', `${field}.port.protocol`, `a server that terminates TLS (${mode}) speaks HTTPS: set protocol HTTPS, not ${protocol}`);
  }
  for (const k of [...FILE_FIELDS_SERVER, 'caCrl']) checkAbsoluteFile(tls[k], `${f}.${k}`, report);
  checkSans(tls.subjectAltNames, `${f}.subjectAltNames`, report, false);
  refuseUnsupported(tls, f, report, {
    caCrl: 'certificate revocation lists are not checked',
    verifyCertificateSpki: 'client certificates are checked by CA and subjectAltNames only',
    verifyCertificateHash: 'client certificates are checked by CA and subjectAltNames only',
    cipherSuites: 'Node’s default TLS 1.2/1.3 cipher list is used',
  });
  if (typeof tls.credentialName === 'string') {
    if (tls.credentialName === '') report('JIBE_ERR_SCHEMA', `${f}.credentialName`, 'must not be empty (omit it and give files instead)');
    const files = present(tls, FILE_FIELDS_SERVER);
    if (files.length) report('JIBE_ERR_SCHEMA', f, `credentialName and ${listWords(files)} both name the certificate; keep one (the credential holds cert, key and ca)`);
  } else {
    const missing = ['serverCertificate', 'privateKey'].filter((k) => tls[k] === undefined);
    if (missing.length) report('JIBE_ERR_SCHEMA', f, `${mode} TLS needs credentialName, or serverCertificate and privateKey (missing ${listWords(missing)})`);
    else if (mode === 'MUTUAL' && tls.caCertificates === undefined) report('JIBE_ERR_SCHEMA', f, `${mode} TLS needs caCertificates to verify client certificates (or a credentialName whose credential has a ca)`);
  }
  if (mode === 'SIMPLE') {
    const mutualOnly = present(tls, ['caCertificates']).concat(asArray(tls.subjectAltNames).length ? ['subjectAltNames'] : []);
    if (mutualOnly.length) report('JIBE_ERR_SCHEMA', f, `SIMPLE TLS asks for no client certificate, so ${listWords(mutualOnly)} would be ignored; remove them or use MUTUAL`);
  }
  const min = asString(tls.minProtocolVersion);
  if (min !== undefined && !TLS_MIN_SUPPORTED.has(min)) report('JIBE_ERR_SCHEMA', `${f}.minProtocolVersion`, `${min} is below what Jibe's gateway accepts (TLS 1.2 and up); use TLSV1_2 or TLSV1_3`);
  const max = asString(tls.maxProtocolVersion);
  if (max !== undefined && max !== 'TLS_AUTO' && max !== 'TLSV1_3') report('JIBE_ERR_SCHEMA', `${f}.maxProtocolVersion`, `capping TLS below 1.3 is not supported (the gateway offers TLS 1.2 and 1.3); remove maxProtocolVersion`);
}
