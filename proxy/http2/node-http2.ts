// node:http2, loaded on first use. Only the discovery client speaks through it
// now (its one long-lived gRPC stream to the control plane); the proxy's
// traffic runs on its own HTTP/2 codec (http2-connection.ts). Types come from
// `import type`, which loads nothing.
import { createRequire } from 'node:module';
import type * as Http2 from 'node:http2';

const load = createRequire(import.meta.url);
let http2: typeof Http2 | undefined;

export function nodeHttp2(): typeof Http2 {
  return (http2 ??= load('node:http2') as typeof Http2);
}
