// BookInfo as data: the workloads `jibe up` starts, each behind a sidecar.
//
// The runner picks each workload's app port and appends `--port <n>` to `args`;
// it sets HTTP_PROXY=http://127.0.0.1:<sidecar outbound port> and
// NODE_USE_ENV_PROXY=1 so the apps' plain `http://<service>:9080` calls go
// through the mesh. `labels` are what the DestinationRules' subsets select on.
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `.ts` when run from source, `.js` when run from the compiled dist/. */
const EXT = extname(fileURLToPath(import.meta.url));

export interface SampleWorkload {
  /** Workload (deployment) name, unique in the namespace; also the reported pod name. */
  name: string;
  /** The service the workload is an endpoint of. */
  service: string;
  version: string;
  serviceAccount: string;
  /** Absolute path of the TypeScript entry point, run with Node. */
  script: string;
  /** Arguments for the script, without `--port`. */
  args: string[];
  /** The service port clients dial (`http://<service>:<servicePort>`). */
  servicePort: number;
  labels: Record<string, string>;
}

export const BOOKINFO_SERVICE_PORT = 9080;

/** Folder of the Istio-style rule files (`jibe apply -f <file>`). */
export const BOOKINFO_NETWORKING_DIR = join(import.meta.dirname, 'networking');

function workload(service: string, version: string, file: string): SampleWorkload {
  const name = `${service}-${version}`;
  return {
    name,
    service,
    version,
    serviceAccount: `bookinfo-${service}`,
    script: join(import.meta.dirname, file + EXT),
    args: ['--version', version, '--name', name],
    servicePort: BOOKINFO_SERVICE_PORT,
    labels: { app: service, version },
  };
}

export const BOOKINFO_WORKLOADS: readonly SampleWorkload[] = Object.freeze([
  workload('productpage', 'v1', 'productpage'),
  workload('details', 'v1', 'details'),
  workload('reviews', 'v1', 'reviews'),
  workload('reviews', 'v2', 'reviews'),
  workload('reviews', 'v3', 'reviews'),
  workload('ratings', 'v1', 'ratings'),
]);

/** The services BookInfo defines, in the order a reader meets them. */
export const BOOKINFO_SERVICES: readonly string[] = Object.freeze(['productpage', 'details', 'reviews', 'ratings']);
