// One proxy of the mTLS benchmark in its own process (so it can be pinned and
// measured alone): `client` is a sidecar whose outbound listener routes
// `upstream:8080` to the server sidecar; `server` is a sidecar whose inbound
// listener forwards to the fortio echo server. `mode` mtls: both hold a
// workload certificate from the benchmark's CA, the server is STRICT and the
// client dials ISTIO_MUTUAL with secure naming; plain: neither has one and
// TLS is off on both ends. Prints `MTLS_PROXY_READY {"port":…}` once serving.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import type { ProxyResource } from '../../core/model/proxy-config.ts';
import { startProxy } from '../../proxy/proxy.ts';
import { certificateExpiry } from '../../proxy/identity/workload-key.ts';
import { MeshIdentity } from '../../proxy/tls/mesh-identity.ts';
import { cluster, endpoints, fullUpdate, route, routeConfig, toCluster, vhost } from '../unit/proxy/proxy-test-helpers.ts';

/** The readiness line's prefix (mtls.bench.ts reads it). */
const READY = 'MTLS_PROXY_READY ';

export interface MtlsProxySpec {
  role: 'client' | 'server';
  mode: 'plain' | 'mtls';
  /** server: its inbound port; client: unused (outbound port is ephemeral). */
  listenPort: number;
  /** server: fortio's port; client: the server proxy's inbound port. */
  targetPort: number;
  spiffeId: string;
  /** The server's SPIFFE ID (client: secure naming). */
  peerSpiffeId: string;
  certFile?: string;
  keyFile?: string;
  rootsFile?: string;
}

const spec = JSON.parse(process.argv[2]) as MtlsProxySpec;
const mtls = spec.mode === 'mtls';
const identity = mtls
  ? new MeshIdentity({
      spiffeId: spec.spiffeId,
      keyPem: readFileSync(spec.keyFile!, 'utf8'),
      certChainPem: readFileSync(spec.certFile!, 'utf8'),
      trustBundle: [readFileSync(spec.rootsFile!, 'utf8')],
      expiresAt: certificateExpiry(readFileSync(spec.certFile!, 'utf8')),
    })
  : undefined;
const proxy = await startProxy({
  node: { id: `sidecar~bench-${spec.role}.default`, type: 'sidecar', namespace: 'default', labels: {} },
  adminPort: 0,
  ...(spec.role === 'client' ? { outboundPort: 0 } : {}),
  logger: pino({ level: 'warn' }),
  identity,
});
const resources: ProxyResource[] =
  spec.role === 'server'
    ? [
        { type: 'listener', name: 'inbound|8080', direction: 'inbound', address: '127.0.0.1', port: spec.listenPort, protocol: 'http', routeConfig: 'inbound|8080', mtls: mtls ? 'STRICT' : 'DISABLE' },
        routeConfig('inbound|8080', [vhost('inbound', ['*'], [route('default', [], toCluster('inbound|8080||'))])]),
        { ...cluster('inbound|8080||'), service: '' },
        endpoints('inbound|8080||', [spec.targetPort]),
      ]
    : [
        routeConfig('outbound', [vhost('upstream', ['upstream', 'upstream:8080'], [route('default', [], toCluster('upstream'))])]),
        cluster('upstream', 'ROUND_ROBIN', { tls: mtls ? { mode: 'ISTIO_MUTUAL', subjectAltNames: [spec.peerSpiffeId] } : { mode: 'DISABLE' } }),
        endpoints('upstream', [{ address: '127.0.0.1', port: spec.targetPort, healthy: true, mtlsReady: mtls }]),
      ];
await proxy.apply(fullUpdate(resources));
process.stdout.write(`${READY}${JSON.stringify({ port: spec.role === 'client' ? proxy.ports.outbound : spec.listenPort })}\n`);
const stop = () => void proxy.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
