// jibe.dev MeshConfig: mesh-wide settings, one per mesh in the root namespace
// (see core/model/mesh-config.ts).
import type { JsonSchema } from './common.ts';
import { boolean, duration, nonEmptyString, object, oneOfStrings } from './common.ts';

export const meshConfigSchema: JsonSchema = object({
  outboundTrafficPolicy: object({ mode: oneOfStrings(['ALLOW_ANY', 'REGISTRY_ONLY']) }),
  defaultRetryBudget: object({
    retryRatio: { type: 'number', minimum: 0 },
    minRetriesPerSecond: { type: 'number', minimum: 0 },
    ttl: duration,
  }),
  accessLog: object({ encoding: oneOfStrings(['JSON', 'TEXT']), disabled: boolean }),
  tracing: object({ sampling: { type: 'number', minimum: 0, maximum: 100 }, zipkinAddress: nonEmptyString }),
});
