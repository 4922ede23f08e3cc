// networking.istio.io Gateway: ports, protocols and hosts an ingress or egress proxy serves.
import type { JsonSchema } from './common.ts';
import { array, boolean, nonEmptyString, object, oneOfStrings, port, string, stringList, stringMap } from './common.ts';

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];

const serverTls = object({
  httpsRedirect: boolean,
  mode: oneOfStrings(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']),
  serverCertificate: string,
  privateKey: string,
  caCertificates: string,
  caCrl: string,
  credentialName: string,
  subjectAltNames: stringList,
  verifyCertificateSpki: stringList,
  verifyCertificateHash: stringList,
  minProtocolVersion: oneOfStrings(TLS_VERSIONS),
  maxProtocolVersion: oneOfStrings(TLS_VERSIONS),
  cipherSuites: stringList,
});

const server = object(
  {
    port: port(['number', 'protocol']),
    hosts: array(nonEmptyString, 1),
    bind: string,
    name: string,
    defaultEndpoint: string,
    tls: serverTls,
  },
  ['port', 'hosts'],
);

export const gatewaySchema: JsonSchema = object({ selector: stringMap, servers: array(server, 1) }, ['servers']);
