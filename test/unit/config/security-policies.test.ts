// PeerAuthentication, AuthorizationPolicy and RequestAuthentication at apply:
// valid Istio examples pass, each malformed policy is refused naming its field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import { validateApply } from '../../../core/config/validate-apply.ts';
import { validateResource } from '../../../core/config/validate-resource.ts';
import { JibeError } from '../../../core/errors/errors.ts';

function problems(yaml: string): Array<[string, string | undefined, string]> {
  const docs = parseDocuments(yaml, 'policy.yaml');
  assert.equal(docs.length, 1);
  return validateResource(docs[0]).map((e) => [e.code, e.details.field, e.message]);
}

function doc(kind: string, spec: string, namespace = 'default'): string {
  return `apiVersion: security.istio.io/v1\nkind: ${kind}\nmetadata:\n  name: p\n  namespace: ${namespace}\nspec:\n${spec}`;
}

const publicJwk = JSON.stringify({ keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' }] });

test('Istio documentation examples are valid', () => {
  const valid = [
    doc('PeerAuthentication', '  mtls:\n    mode: STRICT\n', 'jibe-system'),
    doc('PeerAuthentication', '  selector:\n    matchLabels:\n      app: reviews\n  mtls:\n    mode: PERMISSIVE\n  portLevelMtls:\n    "8080":\n      mode: DISABLE\n'),
    doc(
      'AuthorizationPolicy',
      [
        '  selector:',
        '    matchLabels: {app: httpbin}',
        '  action: ALLOW',
        '  rules:',
        '  - from:',
        '    - source:',
        '        principals: ["cluster.local/ns/default/sa/sleep"]',
        '    - source:',
        '        namespaces: ["test"]',
        '        ipBlocks: ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]',
        '    to:',
        '    - operation:',
        '        methods: ["GET"]',
        '        paths: ["/info*", "*/healthz", "/api/{*}/items/{**}"]',
        '        ports: ["8080"]',
        '    when:',
        '    - key: request.auth.claims[iss]',
        '      values: ["https://accounts.google.com"]',
        '    - key: request.headers[x-token]',
        '      notValues: ["bad*"]',
        '    - key: destination.port',
        '      values: ["8080"]',
        '    - key: request.auth.claims[groups][admin]',
        '      values: ["true"]',
        '',
      ].join('\n'),
    ),
    doc('AuthorizationPolicy', '  action: DENY\n  rules:\n  - from:\n    - source:\n        notNamespaces: ["foo"]\n'),
    doc('AuthorizationPolicy', '  {}\n'),
    doc('AuthorizationPolicy', '  action: CUSTOM\n  provider:\n    name: ext-authz\n  rules:\n  - to:\n    - operation:\n        paths: ["/admin*"]\n'),
    doc('RequestAuthentication', `  selector:\n    matchLabels: {app: httpbin}\n  jwtRules:\n  - issuer: issuer-foo\n    jwks: '${publicJwk}'\n    fromHeaders:\n    - name: x-jwt\n      prefix: "Bearer "\n    forwardOriginalToken: false\n`),
    doc('RequestAuthentication', '  jwtRules:\n  - issuer: https://example.com\n    jwksUri: https://example.com/.well-known/jwks.json\n    audiences: [bookstore]\n'),
  ];
  for (const y of valid) assert.deepEqual(problems(y), [], y);
});

test('malformed policies are refused with the field named', () => {
  const cases: Array<[string, string, RegExp]> = [
    [doc('PeerAuthentication', '  mtls:\n    mode: STRCT\n'), 'spec.mtls.mode', /did you mean STRICT\?/],
    [doc('PeerAuthentication', '  portLevelMtls:\n    "8080":\n      mode: DISABLE\n'), 'spec.portLevelMtls', /needs a selector/],
    [doc('PeerAuthentication', '  selector:\n    matchLabels: {app: a}\n  portLevelMtls:\n    http:\n      mode: DISABLE\n'), 'spec.portLevelMtls.http', /must be a port number/],
    [doc('AuthorizationPolicy', '  action: PERMIT\n'), 'spec.action', /is not one of: ALLOW, DENY, AUDIT, CUSTOM/],
    [doc('AuthorizationPolicy', '  rules:\n  - from:\n    - source:\n        ipBlocks: ["10.0.0.0/33"]\n'), 'spec.rules[0].from[0].source.ipBlocks[0]', /invalid IP block "10.0.0.0\/33"/],
    [doc('AuthorizationPolicy', '  rules:\n  - from:\n    - source:\n        principals: ["cluster.local/*/sa/x"]\n'), 'spec.rules[0].from[0].source.principals[0]', /only at the start/],
    [doc('AuthorizationPolicy', '  rules:\n  - from:\n    - source:\n        namespaces: ["Prod_NS"]\n'), 'spec.rules[0].from[0].source.namespaces[0]', /invalid namespace/],
    [doc('AuthorizationPolicy', '  rules:\n  - from:\n    - source: {}\n'), 'spec.rules[0].from[0].source', /at least one field/],
    [doc('AuthorizationPolicy', '  rules:\n  - to:\n    - operation:\n        ports: ["http"]\n'), 'spec.rules[0].to[0].operation.ports[0]', /invalid port "http"/],
    [doc('AuthorizationPolicy', '  rules:\n  - to:\n    - operation:\n        methods: ["get"]\n'), 'spec.rules[0].to[0].operation.methods[0]', /upper-case HTTP method/],
    [doc('AuthorizationPolicy', '  rules:\n  - to:\n    - operation:\n        paths: ["/a/{**}/b"]\n'), 'spec.rules[0].to[0].operation.paths[0]', /last segment/],
    [doc('AuthorizationPolicy', '  rules:\n  - to:\n    - operation:\n        pathz: ["/a"]\n'), 'spec.rules[0].to[0].operation.pathz', /did you mean "paths"\?/],
    [doc('AuthorizationPolicy', '  rules:\n  - when:\n    - key: request.header[x]\n      values: ["a"]\n'), 'spec.rules[0].when[0].key', /unknown condition key "request.header\[x\]"/],
    [doc('AuthorizationPolicy', '  rules:\n  - when:\n    - key: request.headers\n      values: ["a"]\n'), 'spec.rules[0].when[0].key', /unknown condition key/],
    [doc('AuthorizationPolicy', '  rules:\n  - when:\n    - key: source.ip\n      values: ["nope"]\n'), 'spec.rules[0].when[0].values[0]', /invalid IP block "nope"/],
    [doc('AuthorizationPolicy', '  rules:\n  - when:\n    - key: destination.port\n      values: ["99999"]\n'), 'spec.rules[0].when[0].values[0]', /invalid port/],
    [doc('AuthorizationPolicy', '  rules:\n  - when:\n    - key: source.namespace\n'), 'spec.rules[0].when[0]', /needs values or notValues/],
    [doc('AuthorizationPolicy', '  action: CUSTOM\n  rules: [{}]\n'), 'spec.provider', /action CUSTOM needs provider.name/],
    [doc('AuthorizationPolicy', '  action: DENY\n  provider:\n    name: x\n'), 'spec.provider', /only with action CUSTOM/],
    [doc('AuthorizationPolicy', '  selector:\n    matchLabels: {app: a}\n  targetRef:\n    kind: Gateway\n    name: gw\n'), 'spec.selector', /mutually exclusive/],
    [doc('AuthorizationPolicy', '  targetRef:\n    kind: Pod\n    name: gw\n'), 'spec.targetRef.kind', /not supported/],
    [doc('RequestAuthentication', '  jwtRules:\n  - issuer: a\n    jwks: "{not json"\n'), 'spec.jwtRules[0].jwks', /not valid JSON/],
    [doc('RequestAuthentication', '  jwtRules:\n  - issuer: a\n    jwks: \'{"keys": [{"kty": "RSA", "n": "AQAB"}]}\'\n'), 'spec.jwtRules[0].jwks', /not a usable public key/],
    [doc('RequestAuthentication', '  jwtRules:\n  - issuer: a\n    jwksUri: ftp://keys\n'), 'spec.jwtRules[0].jwksUri', /http:\/\/ or https:\/\//],
    [doc('RequestAuthentication', '  jwtRules:\n  - issuer: not-a-url\n'), 'spec.jwtRules[0].jwksUri', /set jwksUri or jwks/],
    [doc('RequestAuthentication', '  jwtRules:\n  - jwksUri: https://a/keys\n'), 'spec.jwtRules[0].issuer', /required field "issuer"/],
    [doc('RequestAuthentication', '  jwtRules:\n  - issuer: https://a\n    fromHeaders:\n    - name: "bad header"\n'), 'spec.jwtRules[0].fromHeaders[0].name', /invalid header name/],
  ];
  for (const [yaml, field, message] of cases) {
    const found = problems(yaml);
    assert.equal(found.length, 1, `${field}: ${JSON.stringify(found)}`);
    assert.equal(found[0][0], 'JIBE_ERR_SCHEMA');
    assert.equal(found[0][1], field);
    assert.match(found[0][2], message);
  }
});

test('apply rejects a malformed policy as a whole, naming file, resource and field', () => {
  const docs = parseDocuments(doc('AuthorizationPolicy', '  rules:\n  - from:\n    - source:\n        ipBlocks: ["300.1.1.1"]\n', 'shop'), 'authz.yaml');
  assert.throws(
    () => validateApply(docs, [], new Set()),
    (e: unknown) => {
      assert.ok(e instanceof JibeError);
      assert.equal(e.code, 'JIBE_ERR_VALIDATION');
      const [cause] = e.details.causes ?? [];
      assert.deepEqual(
        { file: cause.details.file, resource: cause.details.resource, field: cause.details.field },
        { file: 'authz.yaml', resource: 'AuthorizationPolicy/shop/p', field: 'spec.rules[0].from[0].source.ipBlocks[0]' },
      );
      return true;
    },
  );
});

test('security kinds are accepted under Jibe\'s own group and older Istio versions', () => {
  for (const apiVersion of ['security.jibe.dev/v1', 'security.istio.io/v1beta1']) {
    assert.deepEqual(problems(`apiVersion: ${apiVersion}\nkind: PeerAuthentication\nmetadata:\n  name: p\nspec:\n  mtls:\n    mode: STRICT\n`), []);
  }
});
