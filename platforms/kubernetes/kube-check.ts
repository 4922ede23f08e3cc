// `jibe check`: is this cluster ready for Jibe (--pre), and is Jibe healthy
// in it (default), in the manner of `linkerd check`: grouped checks, ✔ or ✘
// each, a hint under every failure, non-zero exit when any fails. The RBAC
// checked is read from the manifests themselves, so it can never drift from
// what install grants.
import https from 'node:https';
import { kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import { describeObject, ResourceResolver } from './kube-manifests.ts';
import type { ManifestObject } from './kube-manifests.ts';
import { deploymentProblem } from './kube-install.ts';
import { namespaceWantsCaRoot } from './ca-root-configmap.ts';
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY, INJECTION_LABEL } from './inject-pod.ts';
import type { KubeNamespace } from './kube-types.ts';

export const MIN_KUBERNETES = { major: 1, minor: 28 };

export interface CheckResult {
  group: string;
  name: string;
  ok: boolean;
  /** Shown after the name (a version, a count). */
  detail?: string;
  hint?: string;
}

export interface CheckOptions {
  mode: 'pre' | 'post';
  /** Skip waiting-for-pods checks (Deployments available): a cluster without nodes, or a CI dry run. */
  skipWorkloads?: boolean;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs?: string[];
}

interface Attributes {
  group: string;
  resource: string;
  verb: string;
  namespace?: string;
  name?: string;
}

export async function runChecks(client: KubeClient, manifests: ManifestObject[], options: CheckOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const add = (r: CheckResult) => results.push(r);

  // kubernetes-api
  let version: { major?: string; minor?: string; gitVersion?: string } | undefined;
  try {
    version = await client.request('GET', '/version');
    add({ group: 'kubernetes-api', name: 'can reach the Kubernetes API', ok: true, detail: client.server });
  } catch (err) {
    add({ group: 'kubernetes-api', name: 'can reach the Kubernetes API', ok: false, detail: (err as Error).message, hint: 'check the kubeconfig (--kubeconfig, --kube-context) and that the cluster is up' });
    return results;
  }
  const major = Number.parseInt(version?.major ?? '', 10);
  const minor = Number.parseInt(version?.minor ?? '', 10);
  const recent = major > MIN_KUBERNETES.major || (major === MIN_KUBERNETES.major && minor >= MIN_KUBERNETES.minor);
  add({
    group: 'kubernetes-version',
    name: `Kubernetes is at least ${MIN_KUBERNETES.major}.${MIN_KUBERNETES.minor}`,
    ok: recent,
    detail: version?.gitVersion,
    hint: recent ? undefined : 'Jibe needs EndpointSlice v1, TokenRequest and server-side apply as in 1.28+; upgrade the cluster',
  });

  const namespace = manifests.find((o) => o.kind === 'Namespace')?.metadata.name ?? 'jibe-system';
  if (options.mode === 'pre') {
    // Installing applies every manifest, and granting the control plane's roles needs holding their permissions (no escalation).
    const needed: Attributes[] = [];
    const resolver = new ResourceResolver(client);
    for (const o of manifests) {
      const [group, resource] = await groupResource(resolver, o);
      if (resource) needed.push({ group, resource, verb: 'create', namespace: o.metadata.namespace }, { group, resource, verb: 'patch', namespace: o.metadata.namespace });
    }
    needed.push(...rbacAttributes(manifests));
    const denied = await accessDenied(client, dedupe(needed), undefined);
    add({
      group: 'pre-install',
      name: 'can install Jibe (create its objects, grant its roles)',
      ok: denied.length === 0,
      detail: denied.length ? `missing: ${denied.slice(0, 6).map(formatAttr).join(', ')}${denied.length > 6 ? ` and ${denied.length - 6} more` : ''}` : undefined,
      hint: 'run as a cluster admin (cluster-admin role)',
    });
    const existing = await client.get(kubePath('v1', 'namespaces', undefined, namespace));
    add({ group: 'pre-install', name: `namespace ${namespace} is free or Jibe's own`, ok: !existing || (existing.metadata.labels?.['app.kubernetes.io/part-of'] === 'jibe'), hint: `another ${namespace} exists; remove it or install elsewhere` });
    return results;
  }

  // jibe-install
  const ns = await client.get(kubePath('v1', 'namespaces', undefined, namespace));
  add({ group: 'jibe-install', name: `namespace ${namespace} exists`, ok: !!ns, hint: 'run jibe install' });
  for (const crd of manifests.filter((o) => o.kind === 'CustomResourceDefinition')) {
    const live = await client.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(kubePath('apiextensions.k8s.io/v1', 'customresourcedefinitions', undefined, crd.metadata.name));
    const ok = live?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    add({ group: 'jibe-crds', name: `${crd.metadata.name} established`, ok, detail: live ? undefined : 'not installed', hint: 'run jibe install' });
  }

  const serviceAccount = manifests.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === 'jibe-control-plane');
  if (serviceAccount) {
    const user = `system:serviceaccount:${serviceAccount.metadata.namespace}:${serviceAccount.metadata.name}`;
    try {
      const denied = await accessDenied(client, dedupe(rbacAttributes(manifests)), user);
      add({
        group: 'jibe-rbac',
        name: 'the control plane has the permissions it needs',
        ok: denied.length === 0,
        detail: denied.length ? `missing: ${denied.slice(0, 6).map(formatAttr).join(', ')}` : undefined,
        hint: 'reapply the RBAC: jibe install',
      });
    } catch (err) {
      add({ group: 'jibe-rbac', name: 'the control plane has the permissions it needs', ok: false, detail: (err as Error).message, hint: 'checking needs permission to create subjectaccessreviews' });
    }
  }

  const resolver = new ResourceResolver(client);
  let meshRoots: string | undefined;
  for (const cfg of manifests.filter((o) => o.kind === 'MutatingWebhookConfiguration' || o.kind === 'ValidatingWebhookConfiguration')) {
    const path = await resolver.pathOf(cfg);
    const live = path ? await client.get<{ webhooks?: Array<{ name: string; clientConfig: WebhookClientConfig }> }>(path) : undefined;
    if (!live) {
      add({ group: 'jibe-webhooks', name: `${describeObject(cfg)} exists`, ok: false, hint: 'run jibe install' });
      continue;
    }
    for (const w of live.webhooks ?? []) {
      if (!w.clientConfig.caBundle) {
        add({ group: 'jibe-webhooks', name: `${w.name} trusts Jibe's CA`, ok: false, detail: 'no caBundle yet', hint: 'the leading control plane publishes it; is a control-plane replica running? (kubectl -n jibe-system get pods)' });
        continue;
      }
      meshRoots ??= Buffer.from(w.clientConfig.caBundle, 'base64').toString();
      const problem = await webhookProblem(client, w.clientConfig);
      add({ group: 'jibe-webhooks', name: `${w.name} is answering`, ok: !problem, detail: problem, hint: 'is the control plane running and its Service reachable from the API server? (kubectl -n jibe-system get pods,endpointslices)' });
    }
  }

  await checkCaRoots(client, meshRoots, add);

  if (!options.skipWorkloads) {
    for (const d of manifests.filter((o) => o.kind === 'Deployment')) {
      const problem = await deploymentProblem(client, d.metadata.namespace ?? 'default', d.metadata.name).catch((err: Error) => err.message);
      add({ group: 'jibe-workloads', name: `${describeObject(d)} is available`, ok: !problem, detail: problem, hint: `kubectl -n ${d.metadata.namespace} describe deployment ${d.metadata.name}` });
    }
  }
  return results;
}

/** linkerd-check-style text: a heading per group, ✔/✘ lines, hints under failures, a summary. */
export function formatChecks(results: CheckResult[]): string {
  const lines: string[] = [];
  let group = '';
  for (const r of results) {
    if (r.group !== group) {
      if (group) lines.push('');
      group = r.group;
      lines.push(group, '-'.repeat(group.length));
    }
    lines.push(`${r.ok ? '✔' : '✘'} ${r.name}${r.detail ? ` (${r.detail})` : ''}`);
    if (!r.ok && r.hint) lines.push(`    hint: ${r.hint}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  lines.push('', failed ? `Status check results are ✘ (${failed} failed)` : 'Status check results are ✔');
  return `${lines.join('\n')}\n`;
}

/**
 * Every namespace labelled for injection has the `jibe-ca-root-cert` its
 * sidecars verify the control plane with, holding the roots the webhooks
 * trust (the leader writes both from the same roots).
 */
async function checkCaRoots(client: KubeClient, meshRoots: string | undefined, add: (r: CheckResult) => void): Promise<void> {
  const pemSet = (text: string) => (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => p.replace(/\s+/g, '')).sort().join('|');
  let namespaces: KubeNamespace[];
  try {
    namespaces = (await client.list<KubeNamespace>(kubePath('v1', 'namespaces'), { labelSelector: `${INJECTION_LABEL}=enabled` })).items.filter(namespaceWantsCaRoot);
  } catch (err) {
    add({ group: 'jibe-ca-roots', name: 'namespaces labelled for injection can be listed', ok: false, detail: (err as Error).message });
    return;
  }
  for (const ns of namespaces) {
    const name = ns.metadata.name;
    const cm = await client.get<{ data?: Record<string, string> }>(kubePath('v1', 'configmaps', name, CA_ROOT_CONFIGMAP)).catch((err: Error) => err);
    const pem = cm instanceof Error ? undefined : cm?.data?.[CA_ROOT_KEY];
    const problem = cm instanceof Error ? cm.message : !pem ? 'missing' : !pemSet(pem) ? `${CA_ROOT_KEY} holds no certificate` : meshRoots && pemSet(pem) !== pemSet(meshRoots) ? 'roots differ from the webhooks\' caBundle (a rotation not yet published?)' : undefined;
    add({
      group: 'jibe-ca-roots',
      name: `${name} has the mesh roots (${CA_ROOT_CONFIGMAP})`,
      ok: !problem,
      detail: problem,
      hint: "the leading control plane writes it; check its logs and its RBAC (create configmaps, get/update jibe-ca-root-cert): sidecars there cannot get certificates without it",
    });
  }
}

interface WebhookClientConfig {
  url?: string;
  caBundle?: string;
  service?: { name: string; namespace: string; port?: number; path?: string };
}

/** Calls the webhook server's GET /ready the way the API server would reach it: its URL, or the Service (through the API server's proxy). */
async function webhookProblem(client: KubeClient, config: WebhookClientConfig): Promise<string | undefined> {
  try {
    if (config.url) {
      const url = new URL('/ready', config.url);
      const ca = Buffer.from(config.caBundle ?? '', 'base64').toString();
      const status = await new Promise<number>((resolve, reject) => {
        const req = https.get(url, { ca, timeout: 5000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
        req.on('error', reject);
      });
      return status === 200 ? undefined : `GET ${url} answered ${status}`;
    }
    if (config.service) {
      const { name, namespace, port } = config.service;
      await client.request('GET', `${kubePath('v1', 'services', namespace, `https:${name}:${port ?? 443}`)}/proxy/ready`);
      return undefined;
    }
    return 'the configuration names neither a url nor a service';
  } catch (err) {
    return (err as Error).message;
  }
}

async function groupResource(resolver: ResourceResolver, o: ManifestObject): Promise<[string, string | undefined]> {
  const group = o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '';
  const resource = await resolver.resource(o.apiVersion, o.kind).catch(() => undefined);
  return [group, resource?.name];
}

/** Every (group, resource, verb) the manifests' ClusterRoles and Roles grant, for review. */
function rbacAttributes(manifests: ManifestObject[]): Attributes[] {
  const out: Attributes[] = [];
  for (const role of manifests.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
    for (const rule of ((role as unknown as { rules?: PolicyRule[] }).rules ?? [])) {
      for (const group of rule.apiGroups ?? ['']) {
        for (const resource of rule.resources ?? []) {
          for (const verb of rule.verbs ?? []) {
            const names = rule.resourceNames?.length ? rule.resourceNames : [undefined];
            for (const name of names) out.push({ group, resource, verb, namespace: role.kind === 'Role' ? role.metadata.namespace : undefined, name });
          }
        }
      }
    }
  }
  return out;
}

function dedupe(list: Attributes[]): Attributes[] {
  const seen = new Map<string, Attributes>();
  for (const a of list) seen.set(formatAttr(a) + (a.namespace ?? ''), a);
  return [...seen.values()];
}

function formatAttr(a: Attributes): string {
  return `${a.verb} ${a.resource}${a.group ? `.${a.group}` : ''}${a.name ? `/${a.name}` : ''}`;
}

/** The attributes refused: SelfSubjectAccessReview for the caller, SubjectAccessReview for `user`. */
async function accessDenied(client: KubeClient, list: Attributes[], user: string | undefined): Promise<Attributes[]> {
  const denied: Attributes[] = [];
  const groups = user?.startsWith('system:serviceaccount:') ? ['system:serviceaccounts', `system:serviceaccounts:${user.split(':')[2]}`, 'system:authenticated'] : undefined;
  for (let i = 0; i < list.length; i += 16) {
    const batch = list.slice(i, i + 16);
    const answers = await Promise.all(
      batch.map((a) =>
        client.request<{ status?: { allowed?: boolean } }>('POST', user ? '/apis/authorization.k8s.io/v1/subjectaccessreviews' : '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: user ? 'SubjectAccessReview' : 'SelfSubjectAccessReview',
            spec: { ...(user ? { user, groups } : {}), resourceAttributes: { group: a.group, resource: a.resource, verb: a.verb, namespace: a.namespace, name: a.name } },
          },
        }),
      ),
    );
    answers.forEach((r, j) => {
      if (r?.status?.allowed !== true) denied.push(batch[j]);
    });
  }
  return denied;
}
