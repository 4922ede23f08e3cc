// Allow and deny lists over one request attribute (Istio key syntax, e.g.
// `source.ip` with CIDRs, `request.headers[x-api-key]` with Istio patterns):
// an allow list refuses values not on it (and requests without the
// attribute), a deny list refuses values on it.
import { parseConditionKey } from '../../core/model/security.ts';
import { ipTest, stringTest } from './authz-evaluator.ts';
import type { PolicyAdapter, PolicyVerdict } from './policy-adapter.ts';
import { ALLOW } from './policy-adapter.ts';

export interface ListAdapterOptions {
  attribute: string;
  mode: 'allow' | 'deny';
  values: string[];
  status?: number;
  body?: string;
}

export function createListAdapter(name: string, options: ListAdapterOptions): PolicyAdapter {
  const key = parseConditionKey(options.attribute);
  if (key === undefined) throw new Error(`policy adapter ${name}: unknown attribute ${JSON.stringify(options.attribute)}`);
  const test = key.base.endsWith('.ip') ? ipTest(options.values) : stringTest(options.values);
  const denied: PolicyVerdict = { allow: false, status: options.status ?? 403, body: options.body ?? 'RBAC: access denied' };
  const allowList = options.mode === 'allow';
  return {
    name,
    check(a) {
      const listed = a.values(key.base, key.args).some(test);
      return listed === allowList ? ALLOW : denied;
    },
  };
}
