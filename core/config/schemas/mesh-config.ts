// jibe.dev MeshConfig: mesh-wide settings, one per mesh in the root namespace
// (see core/model/mesh-config.ts).
import type { JsonSchema } from './common.ts';
import { array, boolean, duration, integer, nonEmptyString, object, oneOfStrings, portNumber, stringList } from './common.ts';

export const meshConfigSchema: JsonSchema = object({
  outboundTrafficPolicy: object({ mode: oneOfStrings(['ALLOW_ANY', 'REGISTRY_ONLY']) }),
  defaultRetryBudget: object({
    retryRatio: { type: 'number', minimum: 0 },
    minRetriesPerSecond: { type: 'number', minimum: 0 },
    ttl: duration,
  }),
  accessLog: object({ encoding: oneOfStrings(['JSON', 'TEXT']), disabled: boolean }),
  tracing: object({ sampling: { type: 'number', minimum: 0, maximum: 100 }, zipkinAddress: nonEmptyString }),
  // Istio's field names for ext authz; exactly one kind per provider is checked in checks/mesh-config.ts.
  extensionProviders: array(
    object(
      {
        name: nonEmptyString,
        envoyExtAuthzHttp: object(
          {
            service: nonEmptyString,
            port: portNumber,
            timeout: duration,
            pathPrefix: { type: 'string' },
            includeRequestHeadersInCheck: stringList,
            headersToUpstreamOnAllow: stringList,
            headersToDownstreamOnDeny: stringList,
            failOpen: boolean,
            statusOnError: { type: 'string', pattern: '^[1-5][0-9][0-9]$' },
          },
          ['service', 'port'],
        ),
        denyExpression: object({ expression: nonEmptyString }, ['expression']),
        list: object({ attribute: nonEmptyString, values: array(nonEmptyString, 1), mode: oneOfStrings(['allow', 'deny']) }, ['attribute', 'values', 'mode']),
        quota: object({ maxTokens: integer(1), tokensPerFill: integer(1), fillInterval: duration, key: nonEmptyString }, ['maxTokens', 'tokensPerFill', 'fillInterval']),
      },
      ['name'],
    ),
  ),
});
