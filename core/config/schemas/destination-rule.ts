// networking.istio.io DestinationRule: policies for traffic to a host, and its subsets.
import type { JsonSchema } from './common.ts';
import { array, boolean, duration, exportTo, integer, map, nonEmptyString, object, oneOfStrings, portSelector, string, stringList, stringMap } from './common.ts';

const consistentHash = object({
  httpHeaderName: string,
  httpCookie: object({ name: nonEmptyString, path: string, ttl: duration }, ['name']),
  useSourceIp: boolean,
  httpQueryParameterName: string,
  ringHash: object({ minimumRingSize: integer(0) }),
  maglev: object({ tableSize: integer(0) }),
  minimumRingSize: integer(0),
});

const localityLbSetting = object({
  distribute: array(object({ from: nonEmptyString, to: map(integer(0, 100)) }, ['from', 'to'])),
  failover: array(object({ from: nonEmptyString, to: nonEmptyString }, ['from', 'to'])),
  failoverPriority: array(nonEmptyString),
  enabled: boolean,
});

const loadBalancer = object({
  simple: oneOfStrings(['UNSPECIFIED', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH']),
  consistentHash,
  localityLbSetting,
});

const connectionPool = object({
  tcp: object({
    maxConnections: integer(0),
    connectTimeout: duration,
    tcpKeepalive: object({ probes: integer(0), time: duration, interval: duration }),
    maxConnectionDuration: duration,
    idleTimeout: duration,
  }),
  http: object({
    http1MaxPendingRequests: integer(0),
    http2MaxRequests: integer(0),
    maxRequestsPerConnection: integer(0),
    maxRetries: integer(0),
    idleTimeout: duration,
    h2UpgradePolicy: oneOfStrings(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']),
    useClientProtocol: boolean,
    maxConcurrentStreams: integer(0),
  }),
});

const outlierDetection = object({
  consecutiveErrors: integer(0),
  consecutiveGatewayErrors: integer(0),
  consecutive5xxErrors: integer(0),
  splitExternalLocalOriginErrors: boolean,
  consecutiveLocalOriginFailures: integer(0),
  interval: duration,
  baseEjectionTime: duration,
  maxEjectionPercent: integer(0, 100),
  minHealthPercent: integer(0, 100),
});

const clientTls = object({
  mode: oneOfStrings(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']),
  clientCertificate: string,
  privateKey: string,
  caCertificates: string,
  credentialName: string,
  subjectAltNames: stringList,
  sni: string,
  insecureSkipVerify: boolean,
  caCrl: string,
});

const policyFields = { loadBalancer, connectionPool, outlierDetection, tls: clientTls };

const trafficPolicy = object({
  ...policyFields,
  portLevelSettings: array(object({ port: portSelector, ...policyFields }, ['port'])),
});

const subset = object({ name: nonEmptyString, labels: stringMap, trafficPolicy }, ['name']);

export const destinationRuleSchema: JsonSchema = object(
  {
    host: nonEmptyString,
    trafficPolicy,
    subsets: array(subset),
    exportTo,
  },
  ['host'],
);
