// networking.istio.io WorkloadEntry: a workload outside any platform (a VM, a
// bare process). The same shape describes a ServiceEntry's endpoints.
import type { JsonSchema } from './common.ts';
import { integer, map, object, portNumber, string, stringMap } from './common.ts';

export const workloadEntrySchema: JsonSchema = object({
  address: string,
  ports: map(portNumber),
  labels: stringMap,
  network: string,
  locality: string,
  weight: integer(0, 4294967295),
  serviceAccount: string,
});
