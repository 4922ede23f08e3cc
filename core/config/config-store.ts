// ConfigStore: where the mesh's rules live (local file store, Kubernetes CRDs, Consul KV).
// Every implementation passes test/contract/config-store.contract.ts.
import type { Resource } from '../model/resource.ts';

export type ConfigEvent =
  | { type: 'upsert'; resource: Resource }
  | { type: 'delete'; resource: Resource };

export interface ResourceRef {
  kind: string;
  namespace: string;
  name: string;
}

export interface ApplyOptions {
  /**
   * Compare-and-set: when a resource in the batch carries `metadata.resourceVersion`,
   * the write fails with JIBE_ERR_CONFLICT (and nothing is written) unless the stored
   * object has that same version. Without it the write is unconditional.
   */
  checkVersions?: boolean;
}

export interface ConfigStore {
  /** All resources, optionally of one kind, sorted by kind/namespace/name. */
  list(kind?: string): Promise<Resource[]>;
  /**
   * Writes a batch atomically: every resource or none. Returns the stored resources
   * with their new `resourceVersion`.
   */
  apply(resources: Resource[], options?: ApplyOptions): Promise<Resource[]>;
  /** Deletes a batch atomically; a missing ref fails the whole call with JIBE_ERR_NOT_FOUND. */
  delete(refs: ResourceRef[]): Promise<Resource[]>;
  /** Calls `listener` for every change after the call (not for existing resources). Returns an unsubscribe function. */
  watch(listener: (events: ConfigEvent[]) => void): () => void;
  close(): Promise<void>;
}
