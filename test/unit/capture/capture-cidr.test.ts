// CIDRs must come out exactly as iptables-save prints them, or an installed
// rule would look missing and every apply would rewrite the chains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr } from '../../../agents/capture/capture-cidr.ts';

test('IPv4: host bits cleared, bare address gets /32', () => {
  assert.deepEqual(parseCidr('10.1.2.3/8'), { family: 'v4', text: '10.0.0.0/8' });
  assert.equal(parseCidr('192.0.2.5')?.text, '192.0.2.5/32');
  assert.equal(parseCidr('0.0.0.0/0')?.text, '0.0.0.0/0');
  assert.equal(parseCidr('172.16.255.1/12')?.text, '172.16.0.0/12');
});

test('IPv6: RFC 5952 compression as inet_ntop prints it', () => {
  assert.deepEqual(parseCidr('::1'), { family: 'v6', text: '::1/128' });
  assert.equal(parseCidr('FD00:0:0:0::1/8')?.text, 'fd00::/8');
  assert.equal(parseCidr('2001:db8:0:0:1:0:0:1')?.text, '2001:db8::1:0:0:1/128', 'first of two equal zero runs');
  assert.equal(parseCidr('2001:db8:0:1:1:1:1:1')?.text, '2001:db8:0:1:1:1:1:1/128', 'a single zero group is not compressed');
  assert.equal(parseCidr('::/0')?.text, '::/0');
  assert.equal(parseCidr('::ffff:10.1.2.3')?.text, '::ffff:10.1.2.3/128');
  assert.equal(parseCidr('2001:0db8:0000:0000:0000:ff00:0042:8329')?.text, '2001:db8::ff00:42:8329/128');
});

test('not an address: undefined', () => {
  for (const bad of ['', 'example.com', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/x', '::1/129', '1.2.3.4/8/8', '300.1.1.1']) assert.equal(parseCidr(bad), undefined, bad);
});
