// The store contracts against a real API server: rules as custom resources,
// state as Secrets and ConfigMaps.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KubernetesConfigStore } from '../../platforms/kubernetes/config-store-kubernetes.ts';
import { KubernetesStateStore } from '../../platforms/kubernetes/state-store-kubernetes.ts';
import { ruleResourceTypes } from '../../platforms/kubernetes/kube-crds.ts';
import { kubePath } from '../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../platforms/kubernetes/kube-client.ts';
import { clusterUnavailable, startTestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import type { TestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import { ensureNamespace, installCrds } from '../integration/kubernetes/kube-setup.ts';
import { configStoreContract } from './config-store.contract.ts';
import { stateStoreContract } from './state-store.contract.ts';

const problem = clusterUnavailable();
if (problem && process.env.CI === 'true') {
  it('the Kubernetes store contracts need the API server', () => assert.fail(problem));
} else if (problem) {
  it('Kubernetes store contracts', (t) => t.skip(problem));
} else {
  let cluster: TestCluster;
  let client: KubeClient;
  before(async () => {
    cluster = await startTestCluster();
    client = cluster.client();
    await installCrds(client);
    for (const ns of ['jibe-system', 'team-a']) await ensureNamespace(client, ns);
  });
  after(() => cluster?.stop());

  async function wipeRules(): Promise<void> {
    for (const t of ruleResourceTypes().filter((x) => x.group.endsWith('jibe.dev'))) {
      for (const ns of ['default', 'team-a']) await client.request('DELETE', kubePath(`${t.group}/${t.version}`, t.plural, ns));
    }
  }

  describe('Kubernetes stores', () => {
    configStoreContract('kubernetes', async () => {
      await wipeRules();
      return { store: await KubernetesConfigStore.open(client), reopen: () => KubernetesConfigStore.open(client), cleanup: wipeRules };
    });

    let instance = 0;
    stateStoreContract('kubernetes', async () => {
      const name = `contract-${++instance}`;
      const open = async () => new KubernetesStateStore(client, { namespace: 'jibe-system', instance: name });
      return { store: await open(), reopen: open, cleanup: async () => undefined };
    });
  });
}
