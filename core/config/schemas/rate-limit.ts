// jibe.dev RateLimit: local token buckets enforced by the destination's sidecar
// (see core/model/rate-limit.ts for the meaning of each field).
import type { JsonSchema } from './common.ts';
import { array, duration, integer, map, nonEmptyString, object, portNumber, string, stringMatch } from './common.ts';

const empty = object({});

const match = object({
  uri: stringMatch,
  method: stringMatch,
  // `{}` means "header present", as in a VirtualService match.
  headers: map(stringMatch),
  port: portNumber,
});

const limit = object(
  {
    name: string,
    match: array(match),
    maxTokens: integer(1),
    tokensPerFill: integer(1),
    fillInterval: duration,
    per: object({ header: nonEmptyString, sourcePrincipal: empty, sourceIp: empty }),
  },
  ['maxTokens', 'fillInterval'],
);

export const rateLimitSchema: JsonSchema = object({ host: nonEmptyString, limits: array(limit, 1) }, ['host', 'limits']);
