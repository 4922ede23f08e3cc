// Discovery over mutual TLS (15012) against a real control plane: a proxy
// with a workload certificate gets its config; one without a certificate, or
// with an identity of another namespace or service account, gets nothing.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { controlPlaneSpiffeId } from '../../../core/discovery/discovery-tls.ts';
import { discoveryService, nodeToWire } from '../../../core/discovery/discovery-protocol.ts';
import type { WireDiscoveryResponse } from '../../../core/discovery/discovery-protocol.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { ProxyNode } from '../../../core/model/proxy-config.ts';
import { IdentityManager } from '../../../proxy/identity/identity-manager.ts';
import type { WorkloadCertificate } from '../../../proxy/identity/identity-manager.ts';
import { secureNamingProblem } from '../../../proxy/identity/mesh-tls.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const GATEWAY: ProxyNode = { id: 'gateway~default', type: 'gateway', namespace: 'default', labels: { istio: 'ingressgateway' } };

describe('discovery over mutual TLS', () => {
  let dir: string;
  let cp: RunningControlPlane;
  let api: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jibe-discovery-tls-'));
    cp = await startTestControlPlane({
      dataDir: dir,
      discoveryTlsPort: 0,
    });
    api = `http://127.0.0.1:${cp.ports.api}`;
  });
  after(async () => {
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function certificateFor(namespace: string, serviceAccount: string): Promise<WorkloadCertificate> {
    const admin = await readAdminToken(dir);
    const res = await fetch(`${api}/api/v1/bootstrap-tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ namespace, serviceAccount }),
    });
    const { token, spiffeId } = (await res.json()) as { token: string; spiffeId: string };
    const identity = new IdentityManager({ apiBase: api, spiffeId, credential: async () => ({ type: 'bootstrap-token', token }) });
    const cert = await identity.start();
    identity.stop();
    return cert;
  }

  /** Subscribes as `node`; resolves with the first response or the stream's error status. */
  function subscribe(node: ProxyNode, credentials: grpc.ChannelCredentials): Promise<WireDiscoveryResponse | grpc.StatusObject> {
    const Client = discoveryService();
    const client = new Client(`127.0.0.1:${cp.ports.discoveryTls}`, credentials, { 'grpc.use_local_subchannel_pool': 1 });
    const call = client.StreamResources();
    return new Promise((resolve) => {
      call.on('data', (r: WireDiscoveryResponse) => {
        resolve(r);
        call.cancel();
        client.close();
      });
      call.on('error', (status: grpc.StatusObject) => {
        resolve(status);
        client.close();
      });
      call.write({ node: nodeToWire(node), versionInfo: '', responseNonce: '' });
    });
  }

  function mtls(cert: WorkloadCertificate | undefined): grpc.ChannelCredentials {
    const expected = controlPlaneSpiffeId(DEFAULT_MESH_SETTINGS.trustDomain, DEFAULT_MESH_SETTINGS.rootNamespace);
    const roots = Buffer.from(cp.ca.trustBundle().join(''));
    return grpc.credentials.createSsl(roots, cert ? Buffer.from(cert.keyPem) : null, cert ? Buffer.from(cert.certChainPem) : null, {
      checkServerIdentity: (_host, peer) => {
        const problem = secureNamingProblem(peer, [expected]);
        return problem === undefined ? undefined : new Error(problem);
      },
    });
  }

  it('serves a proxy that presents a workload certificate of its namespace', async () => {
    const result = await subscribe(GATEWAY, mtls(await certificateFor('default', 'ingress')));
    assert.ok('versionInfo' in result, `expected a config push, got ${JSON.stringify(result)}`);
    assert.equal(result.fullState, true);
  });

  it('refuses a proxy whose certificate names another namespace', async () => {
    const result = await subscribe(GATEWAY, mtls(await certificateFor('other', 'ingress')));
    assert.ok('code' in result);
    assert.equal(result.code, grpc.status.PERMISSION_DENIED);
    assert.match(result.details, /may not subscribe for namespace default/);
  });

  it('refuses a proxy without a client certificate', async () => {
    const result = await subscribe(GATEWAY, mtls(undefined));
    assert.ok('code' in result, 'no config without a certificate');
    assert.equal(result.code, grpc.status.UNAVAILABLE);
  });
});
