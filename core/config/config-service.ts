// Apply and delete rules: validate the whole batch against the config as it
// would be afterwards, then write it in one atomic store call. Calls are
// serialized so two applies can never validate against the same old config.
import { isDeepStrictEqual } from 'node:util';
import type { Resource } from '../model/resource.ts';
import { resourceKey } from '../model/resource.ts';
import type { ConfigStore, ResourceRef } from './config-store.ts';
import type { ParsedDocument } from './load-documents.ts';
import { validateApply, validateDelete } from './validate-apply.ts';

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  resource: string;
  action: ApplyAction;
}

export class ConfigService {
  private readonly store: ConfigStore;
  private readonly knownHosts: () => Set<string>;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(store: ConfigStore, knownHosts: () => Set<string>) {
    this.store = store;
    this.knownHosts = knownHosts;
  }

  apply(documents: ParsedDocument[], options: { dryRun?: boolean } = {}): Promise<ApplyResult[]> {
    return this.serialize(async () => {
      const current = await this.store.list();
      const resources = validateApply(documents, current, this.knownHosts());
      const byKey = new Map(current.map((r) => [resourceKey(r), r]));
      const results: ApplyResult[] = [];
      const changed: Resource[] = [];
      for (const resource of resources) {
        const key = resourceKey(resource);
        const old = byKey.get(key);
        const action: ApplyAction = !old ? 'created' : sameContent(old, resource) ? 'unchanged' : 'configured';
        results.push({ resource: key, action });
        if (action !== 'unchanged') changed.push(resource);
      }
      if (!options.dryRun && changed.length) await this.store.apply(changed);
      return results;
    });
  }

  delete(refs: ResourceRef[], options: { dryRun?: boolean } = {}): Promise<string[]> {
    return this.serialize(async () => {
      const current = await this.store.list();
      validateDelete(refs, current, this.knownHosts());
      if (options.dryRun) return refs.map((r) => `${r.kind}/${r.namespace}/${r.name}`);
      const deleted = await this.store.delete(refs);
      return deleted.map((r) => resourceKey(r));
    });
  }

  list(kind?: string): Promise<Resource[]> {
    return this.store.list(kind);
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function sameContent(a: Resource, b: Resource): boolean {
  return (
    a.apiVersion === b.apiVersion &&
    isDeepStrictEqual(a.spec, b.spec) &&
    isDeepStrictEqual(a.metadata.labels ?? {}, b.metadata.labels ?? {}) &&
    isDeepStrictEqual(a.metadata.annotations ?? {}, b.metadata.annotations ?? {})
  );
}
