// Fixtures shared by the agent's unit tests: the state a VM agent keeps once
// `jibe agent join` has succeeded (capture and sidecar on), before any join
// options are merged in.
import type { AgentState } from '../../../agents/node/agent-state.ts';

/** The control plane a joined agent trusts. */
export const JOINED_CONTROL_PLANE_ID = 'spiffe://cluster.local/ns/jibe-system/sa/jibe-control-plane';

/** A joined agent's state for workload `name` running as `serviceAccount` in `namespace`; no services registered
 * yet. Addresses are documentation ones (RFC 5737): nothing is dialled. */
export function joinedAgentState(name: string, namespace: string, serviceAccount: string): AgentState {
  return {
    version: 1,
    controlPlane: { address: '198.51.100.1:15015', addresses: ['198.51.100.1:15015'], spiffeId: JOINED_CONTROL_PLANE_ID, rootSha256: 'ab', trustDomain: 'cluster.local' },
    identity: { spiffeId: `spiffe://cluster.local/ns/${namespace}/sa/${serviceAccount}`, namespace, serviceAccount },
    registration: { name, address: '198.51.100.3', services: [] },
    capture: { enabled: true },
    proxy: { enabled: true, uid: 1337, gid: 1337, outboundPort: 15001, inboundPort: 15006, adminPort: 15000 },
    heartbeatMs: 10_000,
    joinedAt: '2026-01-01T00:00:00.000Z',
  };
}
