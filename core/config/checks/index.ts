// Kind → semantic check of its spec. A kind without an entry is checked by its
// schema alone (see ../schemas/index.ts).
import type { SpecCheck } from './check-context.ts';
import { checkDestinationRule } from './destination-rule.ts';
import { checkGateway } from './gateway.ts';
import { checkMeshConfig } from './mesh-config.ts';
import { checkRateLimit } from './rate-limit.ts';
import { checkAuthorizationPolicy, checkPeerAuthentication, checkRequestAuthentication } from './security.ts';
import { checkServiceAlias } from './service-alias.ts';
import { checkServiceEntry } from './service-entry.ts';
import { checkVirtualService } from './virtual-service.ts';
import { checkWorkloadEntry } from './workload-entry.ts';

export type { Report, SpecCheck } from './check-context.ts';

export const SPEC_CHECKS: ReadonlyMap<string, SpecCheck> = new Map([
  ['VirtualService', checkVirtualService],
  ['DestinationRule', checkDestinationRule],
  ['Gateway', checkGateway],
  ['ServiceEntry', checkServiceEntry],
  ['WorkloadEntry', checkWorkloadEntry],
  ['RateLimit', checkRateLimit],
  ['MeshConfig', checkMeshConfig],
  ['PeerAuthentication', checkPeerAuthentication],
  ['AuthorizationPolicy', checkAuthorizationPolicy],
  ['RequestAuthentication', checkRequestAuthentication],
  ['ServiceAlias', checkServiceAlias],
]);
