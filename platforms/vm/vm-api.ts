// The vm platform's API routes (added to the control plane's API through
// core/api/api-routes.ts):
//   admin (token from <data-dir>/admin-token; loopback and TLS port):
//     POST   /api/v1/vm/tokens            {namespace, serviceAccount, ttlSeconds?, labels?, uses?, addresses?} → {token, id, …}
//     GET    /api/v1/vm/tokens            → {tokens}
//     DELETE /api/v1/vm/tokens/<id|token> → {revoked}
//   a VM, by its workload certificate (TLS port only):
//     PUT    /api/v1/vm/workloads                    registration → {workload, discovery}
//     GET    /api/v1/vm/workloads/<ns>/<name>        → {registration}
//     POST   /api/v1/vm/workloads/<ns>/<name>/health {health} → {health}
//     DELETE /api/v1/vm/workloads/<ns>/<name>        → {deregistered}
// A VM acts only for its own identity: the namespace and service account come
// from its certificate, and it may not touch a workload registered under
// another service account.
import type http from 'node:http';
import type { ApiExtensionHost, ApiRoute } from '../../core/api/api-routes.ts';
import { requirePeerIdentity } from '../../core/api/api-routes.ts';
import type { WorkloadIdentity } from '../../core/ca/spiffe-id.ts';
import { JibeError } from '../../core/errors/errors.ts';
import type { Workload } from '../../core/model/workload.ts';
import type { WorkloadRegistrar, WorkloadRegistration } from '../../core/registry/workload-registrar.ts';
import type { StateStore } from '../../core/state/state-store.ts';
import { JOIN_TOKEN_PREFIX, parseHostPort } from './join-token.ts';
import { createJoinToken, listJoinTokens, revokeJoinToken } from './join-token-store.ts';

const MAX_TTL_SECONDS = 30 * 86_400;
/** Host facts are shown, not routed on; bound them so a VM cannot bloat the state. */
const MAX_HOST_FACTS_BYTES = 16 * 1024;

export interface VmApiRegistry extends WorkloadRegistrar {
  registration(namespace: string, name: string): WorkloadRegistration | undefined;
}

export function vmApiRoutes(registry: VmApiRegistry, state: StateStore, host: ApiExtensionHost): ApiRoute[] {
  const own = (req: http.IncomingMessage, namespace: string, name: string): { identity: WorkloadIdentity; existing?: WorkloadRegistration } => {
    const identity = requirePeerIdentity(req);
    if (identity.namespace !== namespace) throw forbidden(identity, `workloads of namespace ${namespace}`);
    const existing = registry.registration(namespace, name);
    if (existing && (existing.serviceAccount ?? 'default') !== identity.serviceAccount) {
      throw forbidden(identity, `workload ${namespace}/${name}, which runs as service account ${existing.serviceAccount ?? 'default'}`);
    }
    return { identity, existing };
  };
  const missing = (namespace: string, name: string) =>
    new JibeError('JIBE_ERR_NOT_FOUND', `no workload ${namespace}/${name} is registered`, { hint: 'register it again (the node agent does so by itself)' });

  return [
    {
      method: 'POST',
      pattern: /^\/api\/v1\/vm\/tokens$/,
      tls: true,
      handler: async (req, _p, body) => {
        host.requireAdmin(req);
        const b = (body ?? {}) as { namespace?: unknown; serviceAccount?: unknown; ttlSeconds?: unknown; labels?: unknown; uses?: unknown; addresses?: unknown };
        if (typeof b.namespace !== 'string' || typeof b.serviceAccount !== 'string') {
          throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"namespace", "serviceAccount", "ttlSeconds"?, "labels"?, "uses"?, "addresses"?}');
        }
        const ttlSeconds = b.ttlSeconds === undefined ? undefined : Number(b.ttlSeconds);
        if (ttlSeconds !== undefined && !(Number.isSafeInteger(ttlSeconds) && ttlSeconds >= 1 && ttlSeconds <= MAX_TTL_SECONDS)) {
          throw new JibeError('JIBE_ERR_BAD_REQUEST', `ttlSeconds must be a whole number from 1 to ${MAX_TTL_SECONDS}`, { field: 'ttlSeconds' });
        }
        const addresses = b.addresses === undefined ? host.tlsAddresses() : b.addresses;
        if (!Array.isArray(addresses) || !addresses.every((a) => typeof a === 'string' && parseHostPort(a))) {
          throw new JibeError('JIBE_ERR_BAD_REQUEST', 'addresses must be a list of host:port', { field: 'addresses' });
        }
        if (addresses.length === 0) {
          throw new JibeError('JIBE_ERR_BAD_REQUEST', 'the control plane serves no TLS API port, so a VM could not reach it', { hint: 'start the control plane with --api-tls-port (default 15015), or pass --address' });
        }
        const { token, info } = await createJoinToken(
          state,
          { trustDomain: host.trustDomain, rootSha256: host.rootSha256(), controlPlane: host.controlPlaneSpiffeId, addresses: addresses as string[] },
          {
            namespace: b.namespace,
            serviceAccount: b.serviceAccount,
            labels: (b.labels ?? {}) as Record<string, string>,
            ttlMs: ttlSeconds === undefined ? undefined : ttlSeconds * 1000,
            uses: b.uses === undefined || b.uses === null ? null : Number(b.uses),
          },
        );
        return { token, addresses, ...info };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/vm\/tokens$/,
      tls: true,
      handler: async (req) => {
        host.requireAdmin(req);
        return { tokens: await listJoinTokens(state) };
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/api\/v1\/vm\/tokens\/([^/]+)$/,
      tls: true,
      handler: async (req, p) => {
        host.requireAdmin(req);
        const revoked = await revokeJoinToken(state, p[0]);
        if (!revoked) throw new JibeError('JIBE_ERR_NOT_FOUND', `no join token matches ${p[0].startsWith(JOIN_TOKEN_PREFIX) ? 'that token' : p[0]}`, { hint: 'see `jibe vm token list` for ids' });
        return { revoked: revoked.id, revokedAt: revoked.revokedAt };
      },
    },
    {
      method: 'PUT',
      pattern: /^\/api\/v1\/vm\/workloads$/,
      tls: true,
      handler: async (req, _p, body) => {
        const b = (body ?? {}) as Partial<WorkloadRegistration>;
        const identity = requirePeerIdentity(req);
        const namespace = b.namespace ?? identity.namespace;
        if (b.serviceAccount !== undefined && b.serviceAccount !== identity.serviceAccount) throw forbidden(identity, `a workload of service account ${b.serviceAccount}`);
        own(req, namespace, String(b.name));
        if (b.host !== undefined && JSON.stringify(b.host).length > MAX_HOST_FACTS_BYTES) {
          throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', `host facts are larger than ${MAX_HOST_FACTS_BYTES} bytes`, { field: 'host' });
        }
        const workload: Workload = await registry.register({ ...b, namespace, serviceAccount: identity.serviceAccount } as WorkloadRegistration);
        return { workload, discovery: host.discoveryPorts() };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/vm\/workloads\/([^/]+)\/([^/]+)$/,
      tls: true,
      handler: async (req, p) => {
        const { existing } = own(req, p[0], p[1]);
        if (!existing) throw missing(p[0], p[1]);
        return { registration: existing };
      },
    },
    {
      method: 'POST',
      pattern: /^\/api\/v1\/vm\/workloads\/([^/]+)\/([^/]+)\/health$/,
      tls: true,
      handler: async (req, p, body) => {
        const { existing } = own(req, p[0], p[1]);
        if (!existing) throw missing(p[0], p[1]);
        const health = (body as { health?: unknown } | undefined)?.health;
        if (health !== 'healthy' && health !== 'unhealthy') throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"health": "healthy" | "unhealthy"}');
        await registry.setHealth(p[0], p[1], health);
        return { health };
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/api\/v1\/vm\/workloads\/([^/]+)\/([^/]+)$/,
      tls: true,
      handler: async (req, p) => {
        const { existing } = own(req, p[0], p[1]);
        if (!existing) throw missing(p[0], p[1]);
        await registry.deregister(p[0], p[1]);
        return { deregistered: `${p[0]}/${p[1]}` };
      },
    },
  ];
}

function forbidden(identity: WorkloadIdentity, what: string): JibeError {
  return new JibeError('JIBE_ERR_FORBIDDEN', `${identity.spiffeId} may not act for ${what}`, {
    hint: 'a VM registers only workloads of the namespace and service account its join token granted',
  });
}
