// networking.istio.io ServiceEntry: adds a host to the mesh's registry (an
// external API, or services the platforms do not know).
import type { JsonSchema } from './common.ts';
import { array, exportTo, nonEmptyString, object, oneOfStrings, port, stringList, stringMap } from './common.ts';
import { workloadEntrySchema } from './workload-entry.ts';

export const serviceEntrySchema: JsonSchema = object(
  {
    hosts: array(nonEmptyString, 1),
    addresses: stringList,
    ports: array(port(['number', 'name'])),
    location: oneOfStrings(['MESH_EXTERNAL', 'MESH_INTERNAL']),
    resolution: oneOfStrings(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN']),
    endpoints: array(workloadEntrySchema),
    workloadSelector: object({ labels: stringMap }, ['labels']),
    exportTo,
  },
  ['hosts'],
);
