// Listeners of direction `gateway`: the ingress gateway's ports, bound and
// unbound as Gateway resources come and go. The gateway is the mesh edge, so
// it overwrites x-forwarded-proto with what it saw rather than trusting the
// client's.
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import { HttpListener } from './listener-http.ts';
import { listenerIndex } from './listener-index.ts';
import type { ConfigListenerDeps } from './listener-manager.ts';

export function createGatewayListener(resource: ListenerResource, deps: ConfigListenerDeps): HttpListener {
  const port = resource.port;
  return new HttpListener({
    kind: 'gateway',
    name: resource.name,
    address: resource.address,
    port,
    edge: true,
    holder: deps.holder,
    routeTable: (state) => state.listenersByPort.get(port)?.routeTable,
    dispatch: deps.dispatch,
    stats: deps.stats,
    logger: deps.logger,
    tls: deps.tlsGate === undefined ? undefined : { gate: deps.tlsGate, resource: (state) => listenerIndex(state).boundByPort.get(port) },
  });
}
