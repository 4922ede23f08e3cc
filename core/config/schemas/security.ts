// security.istio.io PeerAuthentication, AuthorizationPolicy and
// RequestAuthentication. What a schema cannot say (CIDRs that parse, known
// condition keys, selector vs targetRef, a provider for CUSTOM, inline JWKS
// that is a key set) is checked in ../checks/security-*.ts.
import type { JsonSchema } from './common.ts';
import { array, boolean, duration, map, nonEmptyString, object, oneOfStrings, string, stringList, stringMap } from './common.ts';

const workloadSelector: JsonSchema = object({ matchLabels: stringMap });
const targetRef: JsonSchema = object({ group: string, kind: nonEmptyString, name: nonEmptyString, namespace: string }, ['kind', 'name']);
const mtlsMode = oneOfStrings(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);
const mtls: JsonSchema = object({ mode: mtlsMode });

export const peerAuthenticationSchema: JsonSchema = object({
  selector: workloadSelector,
  mtls,
  portLevelMtls: map(mtls),
});

const source: JsonSchema = object({
  principals: stringList,
  notPrincipals: stringList,
  requestPrincipals: stringList,
  notRequestPrincipals: stringList,
  namespaces: stringList,
  notNamespaces: stringList,
  ipBlocks: stringList,
  notIpBlocks: stringList,
  remoteIpBlocks: stringList,
  notRemoteIpBlocks: stringList,
});

const operation: JsonSchema = object({
  hosts: stringList,
  notHosts: stringList,
  ports: stringList,
  notPorts: stringList,
  methods: stringList,
  notMethods: stringList,
  paths: stringList,
  notPaths: stringList,
});

const condition: JsonSchema = object({ key: nonEmptyString, values: stringList, notValues: stringList }, ['key']);

const rule: JsonSchema = object({
  from: array(object({ source }, ['source'])),
  to: array(object({ operation }, ['operation'])),
  when: array(condition),
});

export const authorizationPolicySchema: JsonSchema = object({
  selector: workloadSelector,
  targetRef,
  targetRefs: array(targetRef),
  action: oneOfStrings(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']),
  provider: object({ name: nonEmptyString }, ['name']),
  rules: array(rule),
});

const jwtRule: JsonSchema = object(
  {
    issuer: nonEmptyString,
    audiences: stringList,
    jwksUri: nonEmptyString,
    jwks: nonEmptyString,
    fromHeaders: array(object({ name: nonEmptyString, prefix: string }, ['name'])),
    fromParams: stringList,
    fromCookies: stringList,
    outputPayloadToHeader: string,
    forwardOriginalToken: boolean,
    outputClaimToHeaders: array(object({ header: nonEmptyString, claim: nonEmptyString }, ['header', 'claim'])),
    timeout: duration,
  },
  ['issuer'],
);

export const requestAuthenticationSchema: JsonSchema = object({
  selector: workloadSelector,
  targetRef,
  targetRefs: array(targetRef),
  jwtRules: array(jwtRule),
});
