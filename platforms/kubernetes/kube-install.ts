// `jibe install` / `jibe uninstall`: server-side apply of deploy/kubernetes
// as one field manager (re-running is an upgrade; fields other tools own are
// taken over, as `kubectl apply --server-side --force-conflicts`), then
// waiting, with a progress line per change, for what must be ready: CRDs
// Established always, Deployments available unless told not to wait.
import { JibeError } from '../../core/errors/errors.ts';
import { KubeApiError, kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import { describeObject, FIELD_MANAGER, ResourceResolver } from './kube-manifests.ts';
import type { ManifestObject } from './kube-manifests.ts';

export interface InstallOptions {
  /** Validate every object against the API server (`dryRun=All`) and change nothing. */
  dryRun?: boolean;
  /** Wait for Deployments to be available (CRDs are always waited for). */
  wait?: boolean;
  timeoutMs?: number;
  pollMs?: number;
  progress(line: string): void;
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export async function installManifests(client: KubeClient, objects: ManifestObject[], options: InstallOptions): Promise<void> {
  const resolver = new ResourceResolver(client);
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  for (const o of objects) {
    const path = await resolver.pathOf(o);
    if (!path) throw new JibeError('JIBE_ERR_KUBERNETES', `the API server does not serve ${o.apiVersion} ${o.kind} (${o.source})`, { file: o.source, resource: describeObject(o), hint: 'is the cluster older than Jibe supports? run jibe check --pre' });
    try {
      await client.apply(path, o, { fieldManager: FIELD_MANAGER, force: true, dryRun: options.dryRun });
    } catch (err) {
      if (err instanceof KubeApiError) throw new JibeError('JIBE_ERR_KUBERNETES', `${describeObject(o)} (${o.source}): ${err.message}`, { file: o.source, resource: describeObject(o), hint: err.details.hint });
      throw err;
    }
    options.progress(`✔ ${options.dryRun ? 'valid (dry run)' : 'applied'}  ${describeObject(o)}`);
  }
  if (options.dryRun) return;
  for (const crd of objects.filter((o) => o.kind === 'CustomResourceDefinition')) {
    await waitFor(options, deadline, `CustomResourceDefinition ${crd.metadata.name} established`, async () => {
      const live = await client.get<{ status?: { conditions?: Condition[] } }>(kubePath('apiextensions.k8s.io/v1', 'customresourcedefinitions', undefined, crd.metadata.name));
      const established = live?.status?.conditions?.find((c) => c.type === 'Established');
      return established?.status === 'True' ? true : (established?.message ?? 'not established yet');
    });
  }
  if (options.wait === false) return;
  for (const d of objects.filter((o) => o.kind === 'Deployment')) {
    await waitFor(options, deadline, `${describeObject(d)} available`, async () => (await deploymentProblem(client, d.metadata.namespace ?? 'default', d.metadata.name)) ?? true);
  }
}

/** Why a Deployment is not available yet (`1/2 replicas available`), or undefined when it is. */
export async function deploymentProblem(client: KubeClient, namespace: string, name: string): Promise<string | undefined> {
  const live = await client.get<{ spec?: { replicas?: number }; status?: { availableReplicas?: number; updatedReplicas?: number; conditions?: Condition[] } }>(kubePath('apps/v1', 'deployments', namespace, name));
  if (!live) return 'not found';
  const want = live.spec?.replicas ?? 1;
  const available = live.status?.availableReplicas ?? 0;
  if (available >= want && (live.status?.updatedReplicas ?? 0) >= want) return undefined;
  const failing = live.status?.conditions?.find((c) => c.status === 'False');
  return `${available}/${want} replicas available${failing?.message ? `: ${failing.message}` : ''}`;
}

async function waitFor(options: InstallOptions, deadline: number, what: string, check: () => Promise<true | string>): Promise<void> {
  let last = '';
  for (;;) {
    const result = await check().catch((err: Error) => err.message);
    if (result === true) {
      options.progress(`✔ ${what}`);
      return;
    }
    if (result !== last) options.progress(`… waiting: ${what} (${result})`);
    last = result;
    if (Date.now() > deadline) {
      throw new JibeError('JIBE_ERR_KUBERNETES', `timed out waiting for ${what}: ${result}`, {
        hint: 'inspect it with kubectl describe; jibe check shows what is missing; --wait=false returns once applied',
      });
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
  }
}

export interface UninstallOptions {
  /** Also delete the CRDs, and with them every rule stored in the cluster. */
  crds?: boolean;
  progress(line: string): void;
}

/** Deletes what install applied, in reverse order; CRDs (and the rules in them) stay unless `crds`. */
export async function uninstallManifests(client: KubeClient, objects: ManifestObject[], options: UninstallOptions): Promise<void> {
  const resolver = new ResourceResolver(client);
  for (const o of [...objects].reverse()) {
    if (o.kind === 'CustomResourceDefinition' && !options.crds) {
      options.progress(`· kept     ${describeObject(o)} (pass --crds to delete it and its rules)`);
      continue;
    }
    const path = await resolver.pathOf(o);
    if (!path) continue;
    try {
      await client.request('DELETE', path, { body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' } });
      options.progress(`✔ deleted  ${describeObject(o)}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) {
        options.progress(`· absent   ${describeObject(o)}`);
        continue;
      }
      throw err;
    }
  }
}
