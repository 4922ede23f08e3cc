// Request mirroring through the proxy: the shadow cluster gets the sampled
// share with the `-shadow` authority and the body intact; a hanging or
// failing mirror never delays or fails the main request; a body beyond the
// buffer limit is not mirrored (counted).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { cluster, endpoints, freePort, fullUpdate, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../proxy-test-helpers.ts';
import type { Upstream } from '../proxy-test-helpers.ts';
import { seededRandom, startControlledUpstream, until } from './resilience-test-helpers.ts';
import type { ControlledUpstream } from './resilience-test-helpers.ts';

describe('mirroring through the proxy', () => {
  let proxy: RunningProxy;
  let main: Upstream;
  let shadow: ControlledUpstream;

  before(async () => {
    main = await startUpstream('main');
    shadow = await startControlledUpstream('shadow');
    proxy = await startSidecar({ random: seededRandom(21) });
  });
  afterEach(() => {
    shadow.release();
    shadow.mode = 'ok';
  });
  after(async () => {
    await proxy.close();
    await Promise.all([main.close(), shadow.close()]);
  });

  async function configure(percentage: number, shadowPorts: number[], timeoutMs?: number): Promise<void> {
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [
          vhost('svc', ['svc:8080'], [route('r', [], toCluster('main', { mirror: { cluster: 'shadow', percentage }, timeoutMs }))]),
        ]),
        cluster('main'),
        endpoints('main', [main.port]),
        cluster('shadow'),
        endpoints('shadow', shadowPorts),
      ]),
    );
  }
  const send = (options: { method?: string; body?: Buffer } = {}) => request(proxy.ports.outbound!, { headers: { host: 'svc:8080' }, path: '/m', ...options });
  const shadowStats = () => proxy.stats.cluster('shadow');

  it('sends the sampled share with the -shadow authority and the body intact', async () => {
    await configure(30, [shadow.port]);
    const seen0 = shadow.requests.length;
    const sent0 = shadowStats().upstream_rq_shadow;
    for (let i = 0; i < 100; i++) assert.equal((await send()).status, 200);
    await until(() => shadow.requests.length - seen0 === shadowStats().upstream_rq_shadow - sent0, 'every shadow sent to arrive');
    const mirrored = shadow.requests.length - seen0;
    assert.ok(mirrored > 15 && mirrored < 45, `30% of 100 sampled: ${mirrored}`);
    assert.equal(shadow.requests.at(-1)!.headers.host, 'svc-shadow:8080');
    assert.equal(main.requests.length >= 100, true);

    await configure(100, [shadow.port]);
    const body = Buffer.alloc(10_000, 'm');
    const before = shadow.requests.length;
    assert.equal((await send({ method: 'POST', body })).status, 200);
    await until(() => shadow.requests.length === before + 1, 'the shadow POST');
    const copy = shadow.requests.at(-1)!;
    assert.equal(copy.method, 'POST');
    assert.equal(copy.headers['content-length'], String(body.length));
  });

  it('never lets a hanging or failing mirror delay or fail the main request', async () => {
    shadow.mode = 'hang';
    await configure(100, [shadow.port], 60_000);
    for (let i = 0; i < 5; i++) assert.equal((await send()).status, 200);
    await until(() => shadow.held() === 5, 'five shadows held');

    shadow.mode = 'fail';
    const failed0 = shadowStats().upstream_rq_shadow_failed;
    for (let i = 0; i < 3; i++) assert.equal((await send()).status, 200);
    await until(() => shadowStats().upstream_rq_shadow_failed - failed0 === 3, 'three failed shadows counted');

    const closed = await freePort();
    await configure(100, [closed]);
    const failedBefore = shadowStats().upstream_rq_shadow_failed;
    for (let i = 0; i < 3; i++) assert.equal((await send()).status, 200);
    await until(() => shadowStats().upstream_rq_shadow_failed - failedBefore === 3, 'three refused shadows counted');
  });

  it('skips a body beyond the buffer limit and counts it', async () => {
    await configure(100, [shadow.port]);
    const before = shadow.requests.length;
    const skipped = shadowStats().upstream_rq_shadow_skipped;
    assert.equal((await send({ method: 'POST', body: Buffer.alloc(100 * 1024, 'b') })).status, 200);
    assert.equal(shadowStats().upstream_rq_shadow_skipped - skipped, 1);
    assert.equal(proxy.stats.cluster('main').retry_or_shadow_abandoned > 0, true);
    assert.equal(shadow.requests.length, before);
  });
});
