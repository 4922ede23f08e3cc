// networking.istio.io VirtualService: how requests to a host are routed.
import type { JsonSchema } from './common.ts';
import {
  array, boolean, destination, duration, exportTo, headers, integer, map, nonEmptyString, object, oneOfStrings, percent,
  portNumber, string, stringList, stringMap, stringMatch,
} from './common.ts';

const GRPC_STATUS_NAMES = [
  'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE',
  'DATA_LOSS', 'UNAUTHENTICATED',
];

const httpMatchRequest = object({
  name: string,
  uri: stringMatch,
  scheme: stringMatch,
  method: stringMatch,
  authority: stringMatch,
  // `{}` means "header present", so the map's values may be empty StringMatches.
  headers: map(stringMatch),
  withoutHeaders: map(stringMatch),
  queryParams: map(stringMatch),
  ignoreUriCase: boolean,
  port: portNumber,
  sourceLabels: stringMap,
  sourceNamespace: string,
  gateways: stringList,
});

const httpRouteDestination = object({ destination, weight: integer(0, 100), headers }, ['destination']);

const httpRedirect = object({
  uri: string,
  authority: string,
  port: portNumber,
  scheme: string,
  redirectCode: integer(300, 399),
});

const httpRewrite = object({ uri: string, authority: string });

const httpRetry = object({ attempts: integer(0), perTryTimeout: duration, retryOn: string, retryRemoteLocalities: boolean }, ['attempts']);

const mirrorPolicy = object({ destination, percentage: percent }, ['destination']);

const corsPolicy = object({
  allowOrigins: array(stringMatch),
  allowMethods: stringList,
  allowHeaders: stringList,
  exposeHeaders: stringList,
  maxAge: duration,
  allowCredentials: boolean,
});

const httpFaultInjection = object({
  delay: object({ fixedDelay: duration, percentage: percent }, ['fixedDelay']),
  abort: object({ httpStatus: integer(200, 599), grpcStatus: oneOfStrings(GRPC_STATUS_NAMES), percentage: percent }),
});

const httpDirectResponse = object({ status: integer(200, 599), body: object({ string, bytes: string }) }, ['status']);

const httpRoute = object({
  name: string,
  match: array(httpMatchRequest),
  route: array(httpRouteDestination),
  redirect: httpRedirect,
  directResponse: httpDirectResponse,
  rewrite: httpRewrite,
  timeout: duration,
  retries: httpRetry,
  fault: httpFaultInjection,
  mirror: destination,
  mirrorPercentage: percent,
  mirrors: array(mirrorPolicy),
  corsPolicy,
  headers,
});

const tcpRoute = object({
  match: array(object({ port: portNumber, destinationSubnets: stringList, sourceLabels: stringMap, sourceNamespace: string, gateways: stringList })),
  route: array(object({ destination, weight: integer(0, 100) }, ['destination'])),
});

export const virtualServiceSchema: JsonSchema = object(
  {
    hosts: array(nonEmptyString, 1),
    gateways: stringList,
    http: array(httpRoute),
    tcp: array(tcpRoute),
    exportTo,
  },
  ['hosts'],
);
