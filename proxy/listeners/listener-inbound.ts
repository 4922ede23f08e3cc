// Listeners of direction `inbound`: in front of the local app. Their route
// config sends to the `inbound|<port>||` cluster whose endpoint is the app on
// 127.0.0.1. Inside the mesh, so forwarded headers set by the calling sidecar
// (x-forwarded-proto, x-request-id) are kept.
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import { HttpListener } from './listener-http.ts';
import { listenerIndex } from './listener-index.ts';
import type { ConfigListenerDeps } from './listener-manager.ts';

export function createInboundListener(resource: ListenerResource, deps: ConfigListenerDeps): HttpListener {
  const port = resource.port;
  return new HttpListener({
    kind: 'inbound',
    name: resource.name,
    address: resource.address,
    port,
    edge: false,
    holder: deps.holder,
    routeTable: (state) => state.listenersByPort.get(port)?.routeTable,
    dispatch: deps.dispatch,
    stats: deps.stats,
    logger: deps.logger,
    tls: deps.tlsGate === undefined ? undefined : { gate: deps.tlsGate, resource: (state) => listenerIndex(state).boundByPort.get(port) },
  });
}
