// Config listeners (inbound in front of the app, gateway ports that come and
// go with config), port conflicts as rejected updates, and the admin server.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { JibeError } from '../../../core/errors/errors.ts';
import { inboundClusterName } from '../../../core/model/proxy-config.ts';
import { startProxy } from '../../../proxy/proxy.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import {
  cluster,
  deltaUpdate,
  endpoints,
  freePort,
  fullUpdate,
  listener,
  request,
  route,
  routeConfig,
  silentLogger,
  startSidecar,
  startUpstream,
  toCluster,
  vhost,
} from './proxy-test-helpers.ts';
import type { Upstream } from './proxy-test-helpers.ts';

function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

describe('inbound listener', () => {
  let app: Upstream;
  let proxy: RunningProxy;

  before(async () => {
    app = await startUpstream('app');
    proxy = await startSidecar();
  });

  after(async () => {
    await proxy.close();
    await app.close();
  });

  it('forwards to the local app through the inbound cluster', async () => {
    const inboundPort = await freePort();
    const name = inboundClusterName(9080);
    await proxy.apply(
      fullUpdate([
        listener('inbound|9080', 'inbound', inboundPort, 'inbound|9080'),
        routeConfig('inbound|9080', [vhost('inbound', ['*'], [route('default', [], toCluster(name))])]),
        cluster(name, 'ROUND_ROBIN', { service: '', port: 9080 }),
        endpoints(name, [app.port]),
      ]),
    );
    const reply = await request(inboundPort, { path: '/hello', headers: { host: 'reviews.default.svc.cluster.local:9080', 'x-forwarded-proto': 'https' } });
    assert.equal(reply.body, 'app GET /hello');
    // Inside the mesh the calling sidecar's x-forwarded-proto is kept.
    assert.equal(app.requests.at(-1)!.headers['x-forwarded-proto'], 'https');
    assert.deepEqual(proxy.listenerPorts(), { 'inbound|9080': inboundPort });
  });
});

describe('gateway listeners', () => {
  let web: Upstream;
  let gateway: RunningProxy;
  const webResources = () => [routeConfig('http.8080', [vhost('web', ['*'], [route('all', [], toCluster('web'))])]), cluster('web'), endpoints('web', [web.port])];

  before(async () => {
    web = await startUpstream('web');
    gateway = await startProxy({
      node: { id: 'gateway~ingress.istio-system', type: 'gateway', namespace: 'istio-system', labels: { istio: 'ingressgateway' } },
      adminPort: 0,
      logger: silentLogger,
      drainTimeoutMs: 500,
    });
  });

  after(async () => {
    await gateway.close();
    await web.close();
  });

  it('has no outbound listener', () => {
    assert.equal(gateway.ports.outbound, undefined);
  });

  it('binds a listener from config and unbinds it when it is removed', async () => {
    const port = await freePort();
    await gateway.apply(fullUpdate([listener('gw-8080', 'gateway', port, 'http.8080'), ...webResources()]));
    const reply = await request(port, { path: '/shop', headers: { host: 'shop.example.com', 'x-forwarded-proto': 'https' } });
    assert.equal(reply.body, 'web GET /shop');
    // At the edge the client's claim is not trusted.
    assert.equal(web.requests.at(-1)!.headers['x-forwarded-proto'], 'http');

    await gateway.apply(deltaUpdate([], [{ type: 'listener', name: 'gw-8080' }]));
    assert.equal(await connectRefused(port), true);
    assert.deepEqual(gateway.listenerPorts(), {});
  });

  it('rejects an update whose port is taken, and keeps serving the previous config', async () => {
    const servingPort = await freePort();
    await gateway.apply(fullUpdate([listener('gw-a', 'gateway', servingPort, 'http.8080'), ...webResources()], 'serving'));
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const taken = (squatter.address() as net.AddressInfo).port;
    try {
      await assert.rejects(
        gateway.apply(deltaUpdate([listener('gw-b', 'gateway', taken, 'http.8080')])),
        (e: unknown) => e instanceof JibeError && e.code === 'JIBE_ERR_PORT_IN_USE' && e.message === `port ${taken} is in use`,
      );
      assert.equal(gateway.state().version, 'serving');
      assert.equal((await request(servingPort, { headers: { host: 'x' } })).body, 'web GET /');
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
  });

  it('keeps a listener bound when only its name or routes change', async () => {
    const port = await freePort();
    await gateway.apply(fullUpdate([listener('first', 'gateway', port, 'http.8080'), ...webResources()]));
    await gateway.apply(
      fullUpdate([
        listener('renamed', 'gateway', port, 'other'),
        routeConfig('other', [vhost('any', ['*'], [route('d', [], { directResponse: { status: 200, body: 'other routes' } })])]),
      ]),
    );
    assert.equal((await request(port, { headers: { host: 'x' } })).body, 'other routes');
  });
});

describe('admin server', () => {
  let proxy: RunningProxy;
  let admin: number;

  before(async () => {
    proxy = await startSidecar();
    admin = proxy.ports.admin;
  });

  after(() => proxy.close());

  it('is not ready before the first config, and ready after', async () => {
    assert.equal((await request(admin, { path: '/ready' })).status, 503);
    await proxy.apply(fullUpdate([routeConfig('outbound', [])], 'first'));
    assert.equal((await request(admin, { path: '/ready' })).status, 200);
  });

  it('dumps the running config', async () => {
    await proxy.apply(fullUpdate([routeConfig('outbound', []), cluster('c'), endpoints('c', [1234])], 'dumped'));
    const reply = await request(admin, { path: '/config_dump' });
    assert.equal(reply.headers['content-type'], 'application/json');
    const dump = JSON.parse(reply.body) as { version: string; resources: Array<{ type: string; name: string }> };
    assert.equal(dump.version, 'dumped');
    assert.deepEqual(
      dump.resources.map((r) => `${r.type}/${r.name}`),
      ['cluster/c', 'endpoints/c', 'route/outbound'],
    );
  });

  it('serves counters as text', async () => {
    await request(proxy.ports.outbound!, { headers: { host: 'nothing' } });
    const text = (await request(admin, { path: '/stats' })).body;
    assert.match(text, /^downstream_rq_total: [1-9]\d*$/m);
    assert.match(text, /^downstream_rq_4xx: [1-9]\d*$/m);
    assert.match(text, /^upstream_cx_active: 0$/m);
    assert.match(text, /^cluster\.c\.upstream_rq_total: 0$/m);
    assert.match(text, /^config_update_success: 2$/m);
  });

  it('refuses GET on /quitquitquit and stops gracefully on POST', async () => {
    assert.equal((await request(admin, { path: '/quitquitquit' })).status, 405);
    assert.equal((await request(admin, { method: 'POST', path: '/quitquitquit' })).status, 200);
    await proxy.closed;
    assert.equal(await connectRefused(proxy.ports.outbound!), true);
    assert.equal(await connectRefused(admin), true);
  });
});

describe('proxy lifecycle', () => {
  it('drains on close: in-flight requests finish, new connections are refused', async () => {
    let release: () => void = () => {};
    const slow = await startUpstream('slow', (_req, res) => {
      release = () => res.end('finished');
    });
    const proxy = await startSidecar({ drainTimeoutMs: 5000 });
    try {
      await proxy.apply(fullUpdate([routeConfig('outbound', [vhost('slow', ['slow'], [route('all', [], toCluster('slow'))])]), cluster('slow'), endpoints('slow', [slow.port])]));
      const inFlight = request(proxy.ports.outbound!, { headers: { host: 'slow' } });
      while (slow.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
      const closing = proxy.close();
      while (!(await connectRefused(proxy.ports.outbound!))) await new Promise((r) => setTimeout(r, 5));
      release();
      const reply = await inFlight;
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'finished');
      assert.equal(reply.headers.connection, 'close');
      await closing;
    } finally {
      await proxy.close();
      await slow.close();
    }
  });

  it('starts with an unreachable control plane, serves what apply gives it, and stops cleanly', async () => {
    const proxy = await startSidecar({ discoveryAddress: `127.0.0.1:${await freePort()}` });
    try {
      assert.equal((await request(proxy.ports.admin, { path: '/ready' })).status, 503);
      await proxy.apply(fullUpdate([routeConfig('outbound', [vhost('d', ['d'], [route('all', [], { directResponse: { status: 200, body: 'direct' } })])])]));
      assert.equal((await request(proxy.ports.outbound!, { headers: { host: 'd' } })).body, 'direct');
    } finally {
      await proxy.close();
    }
  });

  it('refuses to start when the admin port is taken', async () => {
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const taken = (squatter.address() as net.AddressInfo).port;
    try {
      await assert.rejects(startSidecar({ adminPort: taken }), (e: unknown) => e instanceof JibeError && e.code === 'JIBE_ERR_PORT_IN_USE');
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
  });
});
