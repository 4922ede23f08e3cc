// What a MeshConfig's schema cannot say about its own spec. Where it may live
// (the root namespace, one per mesh) is a property of the whole config and is
// checked in validate-apply.ts.
import type { SpecCheck } from './check-context.ts';
import { asObject } from './check-context.ts';
import { checkMinDuration } from './check-common.ts';

export const checkMeshConfig: SpecCheck = (spec, report) => {
  const budget = asObject(spec.defaultRetryBudget);
  // A window under a second makes minRetriesPerSecond meaningless (Linkerd bounds ttl to 1s..60s).
  checkMinDuration(budget?.ttl, 'spec.defaultRetryBudget.ttl', report, 1000, 'must be at least 1s');
};
