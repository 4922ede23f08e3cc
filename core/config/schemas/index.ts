// Kind → JSON Schema of its `spec`. Adding a kind: write its schema file and add
// one line here (semantic checks, if any, go in ../checks/index.ts).
import type { JsonSchema } from './common.ts';
import { destinationRuleSchema } from './destination-rule.ts';
import { gatewaySchema } from './gateway.ts';
import { meshConfigSchema } from './mesh-config.ts';
import { rateLimitSchema } from './rate-limit.ts';
import { authorizationPolicySchema, peerAuthenticationSchema, requestAuthenticationSchema } from './security.ts';
import { serviceAliasSchema } from './service-alias.ts';
import { serviceEntrySchema } from './service-entry.ts';
import { virtualServiceSchema } from './virtual-service.ts';
import { workloadEntrySchema } from './workload-entry.ts';

export type { JsonSchema } from './common.ts';

export const SPEC_SCHEMAS: ReadonlyMap<string, JsonSchema> = new Map([
  ['VirtualService', virtualServiceSchema],
  ['DestinationRule', destinationRuleSchema],
  ['Gateway', gatewaySchema],
  ['ServiceEntry', serviceEntrySchema],
  ['WorkloadEntry', workloadEntrySchema],
  ['PeerAuthentication', peerAuthenticationSchema],
  ['AuthorizationPolicy', authorizationPolicySchema],
  ['RequestAuthentication', requestAuthenticationSchema],
  ['RateLimit', rateLimitSchema],
  ['MeshConfig', meshConfigSchema],
  ['ServiceAlias', serviceAliasSchema],
]);

export function specSchema(kind: string): JsonSchema | undefined {
  return SPEC_SCHEMAS.get(kind);
}
