// TLS settings are refused naming their field when they cannot work or would
// be silently ignored: DestinationRule trafficPolicy.tls (how a proxy dials)
// and Gateway servers[].tls (how a gateway terminates), Istio's rules first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import { validateResource } from '../../../core/config/validate-resource.ts';

function problems(yaml: string): Array<[string | undefined, string]> {
  const docs = parseDocuments(yaml, 'test.yaml');
  return validateResource(docs[0]).map((e) => [e.details.field, e.message]);
}
const fields = (yaml: string) => problems(yaml).map((p) => p[0]);

const dr = (tls: string, where = 'trafficPolicy') =>
  where === 'subset'
    ? `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy:\n      tls: ${tls}\n`
    : `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: reviews\n  trafficPolicy:\n    tls: ${tls}\n`;

test('DestinationRule tls: valid settings of each mode pass', () => {
  for (const tls of [
    '{mode: ISTIO_MUTUAL}',
    '{mode: ISTIO_MUTUAL, sni: reviews.default.svc.cluster.local, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/reviews"]}',
    '{mode: DISABLE}',
    '{mode: SIMPLE}',
    '{mode: SIMPLE, caCertificates: /etc/certs/ca.pem, sni: api.example.com, subjectAltNames: [api.example.com]}',
    '{mode: MUTUAL, clientCertificate: /etc/certs/c.pem, privateKey: /etc/certs/k.pem}',
    '{mode: MUTUAL, clientCertificate: /etc/certs/c.pem, privateKey: /etc/certs/k.pem, caCertificates: /etc/certs/ca.pem}',
    '{mode: SIMPLE, insecureSkipVerify: true}',
  ]) assert.deepEqual(problems(dr(tls)), [], tls);
});

test('DestinationRule tls: each mistake names its field', () => {
  const cases: Array<[string, string, RegExp, string?]> = [
    ['{mode: MUTUAL}', 'spec.trafficPolicy.tls', /needs clientCertificate and privateKey/],
    ['{mode: MUTUAL, clientCertificate: /c.pem}', 'spec.trafficPolicy.tls', /needs privateKey/],
    ['{mode: MUTUAL, clientCertificate: certs/c.pem, privateKey: /k.pem}', 'spec.trafficPolicy.tls.clientCertificate', /absolute path/],
    ['{mode: SIMPLE, caCertificates: ca.pem}', 'spec.trafficPolicy.tls.caCertificates', /absolute path/],
    ['{mode: ISTIO_MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}', 'spec.trafficPolicy.tls', /ISTIO_MUTUAL uses the workload certificate.*remove clientCertificate and privateKey/],
    ['{mode: ISTIO_MUTUAL, caCertificates: /ca.pem}', 'spec.trafficPolicy.tls', /remove caCertificates/],
    ['{caCertificates: /ca.pem}', 'spec.trafficPolicy.tls', /auto mTLS \(no mode\) uses the workload certificate/],
    ['{mode: ISTIO_MUTUAL, subjectAltNames: [reviews.default.svc]}', 'spec.trafficPolicy.tls.subjectAltNames[0]', /SPIFFE ID.*can never match/],
    ['{mode: ISTIO_MUTUAL, insecureSkipVerify: true}', 'spec.trafficPolicy.tls.insecureSkipVerify', /always verifies/],
    ['{mode: ISTIO_MUTUAL, credentialName: reviews-cert}', 'spec.trafficPolicy.tls.credentialName', /not supported/],
    ['{mode: SIMPLE, caCrl: /crl.pem}', 'spec.trafficPolicy.tls.caCrl', /revocation lists are not checked/],
    ['{mode: SIMPLE, sni: 10.0.0.1}', 'spec.trafficPolicy.tls.sni', /IP address cannot be sent as SNI/],
    ['{mode: SIMPLE, sni: "*.example.com"}', 'spec.trafficPolicy.tls.sni', /wildcard/],
    ['{mode: SIMPLE, sni: "api.example.com:443"}', 'spec.trafficPolicy.tls.sni', /no port/],
    ['{mode: SIMPLE, subjectAltNames: [a.example.com, a.example.com]}', 'spec.trafficPolicy.tls.subjectAltNames[1]', /listed twice/],
    ['{mode: SIMPLE, clientCertificate: /c.pem}', 'spec.trafficPolicy.tls', /SIMPLE TLS presents no client certificate/],
    ['{mode: DISABLE, sni: a.example.com}', 'spec.trafficPolicy.tls', /DISABLE sends plaintext, so sni would be ignored/],
    ['{mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}', 'spec.trafficPolicy.tls.insecureSkipVerify', /turns off the checks that caCertificates configure/],
    ['{mode: MUTUAL}', 'spec.subsets[0].trafficPolicy.tls', /needs clientCertificate/, 'subset'],
  ];
  for (const [tls, field, message, where] of cases) {
    const found = problems(dr(tls, where));
    assert.ok(found.some(([f, m]) => f === field && message.test(m)), `${tls}: expected ${field} ~ ${message}, got ${JSON.stringify(found)}`);
  }
});

const gw = (tls: string, protocol = 'HTTPS') => `apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  servers:\n  - port: {number: 443, name: https, protocol: ${protocol}}\n    hosts: [bookinfo.example.com]\n    tls: ${tls}\n`;

test('Gateway tls: valid SIMPLE and MUTUAL servers pass', () => {
  for (const tls of [
    '{mode: SIMPLE, credentialName: bookinfo-cert}',
    '{mode: SIMPLE, serverCertificate: /etc/gw/cert.pem, privateKey: /etc/gw/key.pem, minProtocolVersion: TLSV1_3}',
    '{mode: MUTUAL, credentialName: bookinfo-cert}',
    '{mode: MUTUAL, serverCertificate: /etc/gw/cert.pem, privateKey: /etc/gw/key.pem, caCertificates: /etc/gw/ca.pem, subjectAltNames: [client.example.com]}',
  ]) assert.deepEqual(problems(gw(tls)), [], tls);
  assert.deepEqual(problems(gw('{httpsRedirect: true}', 'HTTP')), [], 'httpsRedirect alone on an HTTP server');
});

test('Gateway tls: each mistake names its field', () => {
  const cases: Array<[string, string, RegExp, string?]> = [
    ['{mode: SIMPLE}', 'spec.servers[0].tls', /needs credentialName, or serverCertificate and privateKey/],
    ['{mode: SIMPLE, serverCertificate: /c.pem}', 'spec.servers[0].tls', /missing privateKey/],
    ['{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}', 'spec.servers[0].tls', /needs caCertificates/],
    ['{mode: SIMPLE, serverCertificate: cert.pem, privateKey: /k.pem}', 'spec.servers[0].tls.serverCertificate', /absolute path/],
    ['{mode: SIMPLE, credentialName: c, serverCertificate: /c.pem}', 'spec.servers[0].tls', /credentialName and serverCertificate both name the certificate/],
    ['{mode: SIMPLE, credentialName: ""}', 'spec.servers[0].tls.credentialName', /must not be empty/],
    ['{mode: SIMPLE, credentialName: c, subjectAltNames: [x]}', 'spec.servers[0].tls', /SIMPLE TLS asks for no client certificate/],
    ['{mode: PASSTHROUGH}', 'spec.servers[0].tls.mode', /PASSTHROUGH relays the client's TLS/],
    ['{mode: AUTO_PASSTHROUGH}', 'spec.servers[0].tls.mode', /AUTO_PASSTHROUGH/],
    ['{mode: ISTIO_MUTUAL}', 'spec.servers[0].tls.mode', /ISTIO_MUTUAL on a gateway/],
    ['{mode: OPTIONAL_MUTUAL, credentialName: c}', 'spec.servers[0].tls.mode', /OPTIONAL_MUTUAL/],
    ['{mode: SIMPLE, credentialName: c, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]}', 'spec.servers[0].tls.cipherSuites', /not supported/],
    ['{mode: MUTUAL, credentialName: c, verifyCertificateHash: [ab]}', 'spec.servers[0].tls.verifyCertificateHash', /not supported/],
    ['{mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0}', 'spec.servers[0].tls.minProtocolVersion', /TLS 1.2 and up/],
    ['{mode: SIMPLE, credentialName: c, maxProtocolVersion: TLSV1_2}', 'spec.servers[0].tls.maxProtocolVersion', /below 1.3/],
    ['{mode: SIMPLE, credentialName: c}', 'spec.servers[0].port.protocol', /set protocol HTTPS, not HTTP/, 'HTTP'],
    ['{credentialName: c}', 'spec.servers[0].tls.mode', /needs a tls mode/],
  ];
  for (const [tls, field, message, protocol] of cases) {
    const found = problems(gw(tls, protocol));
    assert.ok(found.some(([f, m]) => f === field && message.test(m)), `${tls}: expected ${field} ~ ${message}, got ${JSON.stringify(found)}`);
  }
  assert.deepEqual(fields(gw('{mode: SIMPLE}')), ['spec.servers[0].tls'], 'one problem, once');
});
