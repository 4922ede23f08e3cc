// The identity checks on mesh TLS peers. The handshakes themselves (refused
// clients, secure naming over real connections, openssl s_client) are
// exercised against the proxy's own acceptor and dialer in
// test/integration/mtls.
import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { describe, it } from 'node:test';
import { secureNamingProblem, spiffeIdOf, subjectAltNameProblem } from '../../../../proxy/identity/mesh-tls.ts';

const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';

const cert = (subjectaltname?: string): PeerCertificate => ({ ...(subjectaltname !== undefined ? { subjectaltname } : {}) }) as PeerCertificate;

describe('mesh TLS identity', () => {
  it('reads the SPIFFE ID from the URI SAN, ignoring other names', () => {
    assert.equal(spiffeIdOf(cert(`DNS:reviews.default.svc, URI:${REVIEWS}`)), REVIEWS);
    assert.equal(spiffeIdOf(cert('DNS:reviews.default.svc, URI:https://example.com/x')), undefined);
    assert.equal(spiffeIdOf(cert()), undefined);
    assert.equal(spiffeIdOf(undefined), undefined);
  });

  it('secure naming: refuses a server running as an identity the service may not have, or none', () => {
    assert.equal(secureNamingProblem(cert(`URI:${RATINGS}`), [RATINGS]), undefined);
    assert.equal(secureNamingProblem(cert(`URI:${REVIEWS}`), [RATINGS]), `the server is ${REVIEWS}, not one of ${RATINGS}`);
    assert.equal(secureNamingProblem(cert(`URI:${REVIEWS}`), []), undefined, 'an empty list allows any mesh identity');
    assert.equal(secureNamingProblem(cert('DNS:reviews'), []), 'the server certificate carries no SPIFFE ID');
  });

  it('operator TLS: a certificate must name one of the expected SANs, whatever their type', () => {
    assert.equal(subjectAltNameProblem(cert('DNS:api.example.com, IP Address:10.0.0.1'), ['10.0.0.1'], 'server'), undefined);
    assert.equal(subjectAltNameProblem(cert(`URI:${REVIEWS}`), [REVIEWS], 'client'), undefined);
    assert.equal(subjectAltNameProblem(cert('DNS:evil.example.com'), ['api.example.com'], 'server'), 'the server certificate names evil.example.com, none of api.example.com');
    assert.equal(subjectAltNameProblem(cert(), ['api.example.com'], 'client'), 'the client certificate names nothing, none of api.example.com');
  });
});
