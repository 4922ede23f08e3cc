// jibe.dev MeshConfig: mesh-wide settings, one per mesh in the root namespace
// (see core/model/mesh-config.ts).
import type { JsonSchema } from './common.ts';
import { duration, object, oneOfStrings } from './common.ts';

export const meshConfigSchema: JsonSchema = object({
  outboundTrafficPolicy: object({ mode: oneOfStrings(['ALLOW_ANY', 'REGISTRY_ONLY']) }),
  defaultRetryBudget: object({
    retryRatio: { type: 'number', minimum: 0 },
    minRetriesPerSecond: { type: 'number', minimum: 0 },
    ttl: duration,
  }),
});
