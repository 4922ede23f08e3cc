// PlatformRegistry: how a platform (Kubernetes, Consul, VMs) feeds services and
// workloads into the mesh. Adapters convert platform objects into these model
// objects; the rest of the system never sees a platform type.
import type { PlatformName, Service } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';

export type RegistryEvent =
  | { kind: 'service'; op: 'upsert'; service: Service }
  | { kind: 'service'; op: 'delete'; hostname: string }
  | { kind: 'workload'; op: 'upsert'; workload: Workload }
  | { kind: 'workload'; op: 'delete'; namespace: string; name: string }
  /** The registry replaced its whole view (first sync, relist): everything not re-sent is gone. */
  | { kind: 'sync'; services: Service[]; workloads: Workload[] };

export interface PlatformRegistry {
  readonly platform: PlatformName;
  /** Starts watching; the first call of `listener` is a `sync` with the full view. */
  watch(listener: (events: RegistryEvent[]) => void): Promise<void>;
  stop(): Promise<void>;
}
