// The install manifests (deploy/kubernetes/*.yaml) as objects, and where each
// lives in the API. Paths come from the API server's own discovery, so any
// kind the server serves works, with its real plural and scope.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { JibeError } from '../../core/errors/errors.ts';
import { kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import type { KubeObject } from './kube-types.ts';

export const FIELD_MANAGER = 'jibe-install';
export const PART_OF_LABEL = 'app.kubernetes.io/part-of';

export interface ManifestObject extends KubeObject {
  apiVersion: string;
  kind: string;
  /** The file it came from, for messages (not enumerable: never sent). */
  readonly source?: string;
}

/**
 * deploy/kubernetes beside the sources (`node cli/jibe.ts`), or beside the
 * compiled CLI (`dist/deploy/kubernetes`, as the image has it), or the
 * repository's when running from dist/ in a checkout.
 */
export function defaultManifestDir(): string {
  const candidates = ['../../deploy/kubernetes/', '../../../deploy/kubernetes/'].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  const found = candidates.find((dir) => existsSync(join(dir, '00-namespace.yaml')));
  if (!found) throw new JibeError('JIBE_ERR_KUBERNETES', `the install manifests are not where Jibe looks for them (${candidates.join(', ')})`, { hint: 'pass --manifests <dir> (deploy/kubernetes of the Jibe release)' });
  return found;
}

/** Every object of every `*.yaml` file in `dir`, files in name order (namespace, CRDs, RBAC, workloads, webhooks). */
export function loadManifests(dir: string = defaultManifestDir()): ManifestObject[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort();
  const out: ManifestObject[] = [];
  for (const file of files) {
    const path = join(dir, file);
    parseAllDocuments(readFileSync(path, 'utf8')).forEach((doc, i) => {
      if (doc.errors.length) throw new JibeError('JIBE_ERR_YAML_PARSE', `${file}: ${doc.errors[0].message}`, { file: path, documentIndex: i });
      const obj = doc.toJS() as ManifestObject | null;
      if (!obj) return;
      if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) throw new JibeError('JIBE_ERR_YAML_PARSE', `${file}: document ${i} is not a Kubernetes object (apiVersion, kind, metadata.name)`, { file: path, documentIndex: i });
      // Not enumerable: the object is sent as is, and the API server refuses unknown fields.
      Object.defineProperty(obj, 'source', { value: file, enumerable: false });
      out.push(obj);
    });
  }
  return out;
}

/** `Deployment jibe-system/jibe-control-plane`. */
export function describeObject(o: KubeObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

interface ApiResourceList {
  resources: Array<{ name: string; kind: string; namespaced: boolean }>;
}

/** Resolves kinds to API paths through discovery, one call per group version. */
export class ResourceResolver {
  private readonly client: KubeClient;
  private readonly lists = new Map<string, Promise<ApiResourceList | undefined>>();

  constructor(client: KubeClient) {
    this.client = client;
  }

  /** Forgets what was discovered (after CRDs were installed). */
  reset(): void {
    this.lists.clear();
  }

  /** The path of `o` (with its name), or undefined when the server does not serve its kind. */
  async pathOf(o: ManifestObject, withName = true): Promise<string | undefined> {
    const resource = await this.resource(o.apiVersion, o.kind);
    if (!resource) return undefined;
    return kubePath(o.apiVersion, resource.name, resource.namespaced ? (o.metadata.namespace ?? 'default') : undefined, withName ? o.metadata.name : undefined);
  }

  async resource(apiVersion: string, kind: string): Promise<{ name: string; namespaced: boolean } | undefined> {
    let list = this.lists.get(apiVersion);
    if (!list) {
      list = this.client.get<ApiResourceList>(apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`);
      list.catch(() => this.lists.delete(apiVersion));
      this.lists.set(apiVersion, list);
    }
    const found = (await list)?.resources.find((r) => r.kind === kind && !r.name.includes('/'));
    return found && { name: found.name, namespaced: found.namespaced };
  }
}
