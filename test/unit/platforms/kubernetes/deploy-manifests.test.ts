// The committed install manifests: the CRD file is what the generator makes
// from core's schemas today (a schema change without regenerating fails
// here), every file parses into Kubernetes objects, and the pieces agree.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CRD_FILE, renderCrdFile } from '../../../../platforms/kubernetes/generate-crds.ts';
import { buildCrds } from '../../../../platforms/kubernetes/kube-crds.ts';
import { loadManifests } from '../../../../platforms/kubernetes/kube-manifests.ts';
import { JIBE_WEBHOOK_CONFIGS } from '../../../../platforms/kubernetes/webhook-ca-bundle.ts';
import { CA_ROOT_CONFIGMAP } from '../../../../platforms/kubernetes/inject-pod.ts';

describe('deploy/kubernetes', () => {
  it('10-crds.yaml is up to date with core/config/schemas (regenerate: node platforms/kubernetes/generate-crds.ts)', () => {
    assert.equal(readFileSync(CRD_FILE, 'utf8'), renderCrdFile());
  });

  it('every file parses; namespace first, CRDs before the workloads, one CRD per rule kind', () => {
    const objects = loadManifests();
    assert.equal(objects[0].kind, 'Namespace');
    const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name);
    assert.deepEqual(crds, buildCrds().map((c) => c.metadata.name));
    const firstDeployment = objects.findIndex((o) => o.kind === 'Deployment');
    assert.ok(objects.findIndex((o) => o.kind === 'CustomResourceDefinition') < firstDeployment);
  });

  it('the webhook configurations are the ones the control plane publishes its CA bundle to, and carry no caBundle themselves', () => {
    const objects = loadManifests();
    for (const ref of JIBE_WEBHOOK_CONFIGS) {
      const cfg = objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name) as unknown as { webhooks: Array<{ clientConfig: Record<string, unknown>; failurePolicy: string }> } | undefined;
      assert.ok(cfg, `${ref.kind} ${ref.name}`);
      for (const w of cfg.webhooks) assert.equal(w.clientConfig.caBundle, undefined);
    }
    const validator = objects.find((o) => o.metadata.name === 'jibe-validator') as unknown as { webhooks: Array<{ rules: Array<{ apiGroups: string[] }>; failurePolicy: string }> };
    const jibe = validator.webhooks.find((w) => w.rules[0].apiGroups.includes('networking.jibe.dev'))!;
    assert.equal(jibe.failurePolicy, 'Fail');
  });

  it('the control plane runs two replicas and serves 15010, 15012, 15014, 15015 and 15017 through its Service', () => {
    const objects = loadManifests();
    const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'jibe-control-plane') as unknown as { spec: { replicas: number } };
    assert.equal(deployment.spec.replicas, 2);
    const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'jibe-control-plane') as unknown as { spec: { ports: Array<{ port: number }> } };
    assert.deepEqual(service.spec.ports.map((p) => p.port), [15010, 15012, 15014, 15015, 15017]);
  });

  it('the ClusterRole lets the control plane write only the jibe-ca-root-cert ConfigMap outside jibe-system: create, and get/update by that name', () => {
    const role = loadManifests().find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'jibe-control-plane') as unknown as { rules: Array<{ apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] }> };
    const configMapRules = role.rules.filter((r) => r.apiGroups.includes('') && (r.resources.includes('configmaps') || r.resources.includes('*')));
    assert.deepEqual(configMapRules.map((r) => ({ names: r.resourceNames, verbs: r.verbs })), [
      { names: undefined, verbs: ['create'] },
      { names: [CA_ROOT_CONFIGMAP], verbs: ['get', 'update'] },
    ]);
  });
});
