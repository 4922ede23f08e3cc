// Pure pieces of TCP proxying and capture: protocol sniffing on first bytes,
// the outbound virtual listener lookup by original destination (most
// specific address wins), sockaddr decoding, and the Node internal the
// SO_ORIGINAL_DST lookup relies on (`socket._handle.fd`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { ListenerResource } from '../../../../core/model/proxy-config.ts';
import { ListenerIndex } from '../../../../proxy/listeners/listener-index.ts';
import { classifyPrefix } from '../../../../proxy/listeners/listener-sniff.ts';
import { decodeSockaddr, originalDestination, socketFd } from '../../../../proxy/tcp/original-destination.ts';
import { pickWeightedCluster } from '../../../../proxy/tcp/tcp-proxy.ts';

const b = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));

test('sniffing: HTTP/1 method + space, HTTP/2 preface, TLS handshake, anything else is TCP', () => {
  assert.equal(classifyPrefix(b('GET / HTTP/1.1\r\n')), 'http1');
  assert.equal(classifyPrefix(b('PROPFIND ')), 'http1');
  assert.equal(classifyPrefix(b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'http2');
  assert.equal(classifyPrefix(b([0x16, 0x03, 0x01, 0x02, 0x00])), 'tls');
  assert.equal(classifyPrefix(b([0x16, 0x01])), 'tcp');
  assert.equal(classifyPrefix(b('\u0000\u0000\u0000\u0001')), 'tcp', 'binary protocol');
  assert.equal(classifyPrefix(b(' GET')), 'tcp', 'a space first is no method');
  assert.equal(classifyPrefix(b('HELO\r\n')), 'tcp', 'a token ended by CR is not a request line');
  assert.equal(classifyPrefix(b('A'.repeat(40))), 'tcp', 'no method is that long');
});

test('sniffing waits when the bytes so far cannot tell', () => {
  assert.equal(classifyPrefix(b('')), undefined);
  assert.equal(classifyPrefix(b('GE')), undefined);
  assert.equal(classifyPrefix(b('PRI')), undefined, 'a prefix of the HTTP/2 preface');
  assert.equal(classifyPrefix(b('PRI * HTTP/2.0\r\n')), undefined);
  assert.equal(classifyPrefix(b([0x16])), undefined);
  assert.equal(classifyPrefix(b('PRI / HTTP/1.1\r\n')), 'http1', 'PRI as an HTTP/1 method once it departs from the preface');
});

function outbound(name: string, port: number, destinationAddresses?: string[]): ListenerResource {
  return { type: 'listener', name, direction: 'outbound', address: '0.0.0.0', port, protocol: 'tcp', destinationAddresses };
}

test('outbound virtual listener lookup: exact address beats CIDR beats any address; port must match', () => {
  const index = new ListenerIndex(
    [
      outbound('any_5432', 5432),
      outbound('net_5432', 5432, ['10.0.0.0/8']),
      outbound('subnet_5432', 5432, ['10.1.0.0/16']),
      outbound('vip_5432', 5432, ['10.1.2.3']),
      outbound('v6_5432', 5432, ['fd00:1::/64']),
      outbound('vip_9000', 9000, ['10.1.2.3', 'fd00:1::7']),
    ],
    'ALLOW_ANY',
  );
  assert.equal(index.outbound('10.1.2.3', 5432)?.name, 'vip_5432');
  assert.equal(index.outbound('10.1.9.9', 5432)?.name, 'subnet_5432');
  assert.equal(index.outbound('10.200.0.1', 5432)?.name, 'net_5432');
  assert.equal(index.outbound('192.0.2.1', 5432)?.name, 'any_5432');
  assert.equal(index.outbound('fd00:1::99', 5432)?.name, 'v6_5432');
  assert.equal(index.outbound('fd00:2::1', 5432)?.name, 'any_5432', 'other IPv6 falls to any address');
  assert.equal(index.outbound('fd00:1::7', 9000)?.name, 'vip_9000');
  assert.equal(index.outbound('10.1.2.4', 9000), undefined, 'no listener covers it');
  assert.equal(index.outbound('10.1.2.3', 9001), undefined);
});

test('listener index: inbound by port, bound listeners exclude outbound virtual ones', () => {
  const inbound: ListenerResource = { type: 'listener', name: 'inbound|9080', direction: 'inbound', address: '10.0.0.5', port: 9080, protocol: 'auto' };
  const gateway: ListenerResource = { type: 'listener', name: 'gw', direction: 'gateway', address: '0.0.0.0', port: 8080, protocol: 'http', routeConfig: 'gw' };
  const index = new ListenerIndex([inbound, gateway, outbound('o', 9080)], 'REGISTRY_ONLY');
  assert.equal(index.inboundByPort.get(9080), inbound);
  assert.deepEqual([...index.boundByPort.keys()].sort(), [8080, 9080]);
  assert.equal(index.outboundTrafficPolicy, 'REGISTRY_ONLY');
});

test('sockaddr decoding: sockaddr_in and sockaddr_in6 as Linux lays them out', () => {
  const v4 = Buffer.alloc(16);
  v4.writeUInt16LE(2, 0);
  v4.writeUInt16BE(8080, 2);
  v4.set([192, 0, 2, 1], 4);
  assert.deepEqual(decodeSockaddr(v4), { address: '192.0.2.1', port: 8080, family: 4 });
  const v6 = Buffer.alloc(28);
  v6.writeUInt16LE(10, 0);
  v6.writeUInt16BE(443, 2);
  Buffer.from('fd000001000000000000000000000007', 'hex').copy(v6, 8);
  assert.deepEqual(decodeSockaddr(v6), { address: 'fd00:1::7', port: 443, family: 6 });
  Buffer.from('00000000000000000000000000000001', 'hex').copy(v6, 8);
  assert.equal(decodeSockaddr(v6)?.address, '::1');
  Buffer.from('00000000000000000000ffffc0000201', 'hex').copy(v6, 8);
  assert.equal(decodeSockaddr(v6)?.address, '::ffff:192.0.2.1');
  Buffer.from('20010db8000100020003000400050006', 'hex').copy(v6, 8);
  assert.equal(decodeSockaddr(v6)?.address, '2001:db8:1:2:3:4:5:6', 'no zero run, nothing compressed');
  assert.equal(decodeSockaddr(Buffer.alloc(4)), undefined);
});

test('the fd of an accepted socket is reachable (Node internal _handle.fd); a connection that was not redirected has no original destination', async () => {
  const accepted = Promise.withResolvers<net.Socket>();
  const server = net.createServer((s) => accepted.resolve(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const socket = await accepted.promise;
  try {
    const fd = socketFd(socket);
    assert.equal(typeof fd, 'number', 'socket._handle.fd must exist: original-destination.ts depends on it');
    assert.ok(fd! > 2);
    const dst = originalDestination(socket);
    // Without a NAT entry the kernel answers ENOENT, or (some kernels) the socket's own address.
    assert.ok(dst === undefined || (dst.address === '127.0.0.1' && dst.port === socket.localPort), JSON.stringify(dst));
  } finally {
    client.destroy();
    socket.destroy();
    server.close();
  }
});

test('weighted tcpRoute: picks by weight', () => {
  const clusters = [
    { cluster: 'a', weight: 25 },
    { cluster: 'b', weight: 75 },
  ];
  assert.equal(pickWeightedCluster(clusters, () => 0)?.cluster, 'a');
  assert.equal(pickWeightedCluster(clusters, () => 0.24)?.cluster, 'a');
  assert.equal(pickWeightedCluster(clusters, () => 0.26)?.cluster, 'b');
  assert.equal(pickWeightedCluster(clusters, () => 0.999)?.cluster, 'b');
  assert.equal(pickWeightedCluster([], () => 0), undefined);
});
