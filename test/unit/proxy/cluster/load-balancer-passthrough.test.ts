// PASSTHROUGH sends a captured request on to the address the client meant
// (remembered on its connection by the outbound capture listener); without
// one it balances the cluster's listed endpoints.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { createPassthrough } from '../../../../proxy/cluster/load-balancer-passthrough.ts';
import type { UpstreamHost } from '../../../../proxy/cluster/upstream-pool.ts';
import type { Exchange } from '../../../../proxy/http/exchange.ts';
import { rememberOriginalDestination } from '../../../../proxy/tcp/original-destination.ts';

const host = (address: string, port: number) => ({ address, port, key: `${address}:${port}` }) as unknown as UpstreamHost;
const exchangeOn = (socket: net.Socket) => ({ down: { httpVersion: 1, socket } }) as unknown as Exchange;

describe('PASSTHROUGH load balancing', () => {
  const listed = [host('10.0.0.1', 80), host('10.0.0.2', 80)];
  const made: string[] = [];
  const lb = createPassthrough({ hosts: listed, weights: undefined, random: () => 0, hostOf: (a, p) => (made.push(`${a}:${p}`), host(a, p)) });

  it('goes to the original destination a captured connection remembers', () => {
    const socket = new net.Socket();
    rememberOriginalDestination(socket, { address: '192.0.2.7', port: 8443, family: 4 });
    const picked = lb.pick(exchangeOn(socket))!;
    assert.equal(picked.key, '192.0.2.7:8443');
    assert.deepEqual(made, ['192.0.2.7:8443']);
    socket.destroy();
  });

  it('balances the listed endpoints for a request that was not redirected', () => {
    const socket = new net.Socket();
    const keys = [lb.pick(exchangeOn(socket))!.key, lb.pick(exchangeOn(socket))!.key, lb.pick()!.key];
    assert.deepEqual(new Set(keys), new Set(['10.0.0.1:80', '10.0.0.2:80']));
    socket.destroy();
  });
});
