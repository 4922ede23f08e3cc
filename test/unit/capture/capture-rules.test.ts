// The capture rules are data: these tests pin the exact lists so a change to
// what Jibe installs on a host shows up here, without root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCaptureRules, renderCommands, renderDryRun, renderRestore, renderRuleLine } from '../../../agents/capture/capture-rules.ts';
import type { Rule } from '../../../agents/capture/capture-rules.ts';
import { DEFAULT_CAPTURE_CONFIG } from '../../../agents/capture/capture-config.ts';
import type { CaptureOptions } from '../../../agents/capture/capture-config.ts';
import { JibeError } from '../../../core/errors/errors.ts';

const lines = (rules: Rule[]): string[] => rules.map((r) => renderRuleLine(r));
const c = (text: string): string => `-m comment --comment "jibe: ${text}"`;

const DEFAULT_V4 = [
  `-A PREROUTING -p tcp ${c('send inbound TCP to the inbound capture chain')} -j JIBE_INBOUND`,
  `-A JIBE_INBOUND -p tcp -m tcp --dport 15021 ${c('inbound port 15021 is excluded from capture')} -j RETURN`,
  `-A JIBE_INBOUND -p tcp -m tcp --dport 15090 ${c('inbound port 15090 is excluded from capture')} -j RETURN`,
  `-A JIBE_INBOUND -p tcp ${c('capture inbound TCP on every other port')} -j JIBE_IN_REDIRECT`,
  `-A JIBE_IN_REDIRECT -p tcp ${c('hand captured inbound TCP to the proxy on port 15006')} -j REDIRECT --to-ports 15006`,
  `-A OUTPUT -p tcp ${c('send outbound TCP to the outbound capture chain')} -j JIBE_OUTPUT`,
  `-A JIBE_OUTPUT -m owner --uid-owner 1337 ${c('traffic of the proxy itself (uid 1337) is not captured, else it would loop')} -j RETURN`,
  `-A JIBE_OUTPUT -m owner --gid-owner 1337 ${c('traffic of the proxy itself (gid 1337) is not captured, else it would loop')} -j RETURN`,
  `-A JIBE_OUTPUT -d 127.0.0.1/32 ${c('loopback traffic is not captured')} -j RETURN`,
  `-A JIBE_OUTPUT ${c('capture all other outbound TCP')} -j JIBE_REDIRECT`,
  `-A JIBE_REDIRECT -p tcp ${c('hand captured outbound TCP to the proxy on port 15001')} -j REDIRECT --to-ports 15001`,
];

test('default config: Istio ports and uid, inbound and outbound capture, IPv4 only', () => {
  const rules = buildCaptureRules();
  assert.deepEqual(lines(rules.v4), DEFAULT_V4);
  assert.deepEqual(rules.v6, []);
  assert.equal(DEFAULT_CAPTURE_CONFIG.proxyUid, 1337);
  assert.equal(DEFAULT_CAPTURE_CONFIG.dns.enabled, false);
});

test('a rule is data: table, chain, args ending in the target, comment apart', () => {
  const [first] = buildCaptureRules().v4;
  assert.deepEqual(first, { table: 'nat', chain: 'PREROUTING', args: ['-p', 'tcp', '-j', 'JIBE_INBOUND'], comment: 'send inbound TCP to the inbound capture chain' });
});

test('exclusions: control plane, CIDRs, ports, custom uid and ports', () => {
  const rules = buildCaptureRules({
    proxyUid: 2000,
    proxyGid: 2001,
    inboundPort: 16006,
    outboundPort: 16001,
    includeInboundPorts: [9080, 15021, 8080],
    excludeInboundPorts: [15021],
    includeOutboundCidrs: ['10.0.0.0/8', '2001:db8::/32'],
    excludeOutboundCidrs: ['10.96.0.1', '10.1.2.3/16'],
    includeOutboundPorts: [3306],
    excludeOutboundPorts: [22, 22],
    controlPlane: { address: '192.0.2.7' },
  });
  assert.deepEqual(lines(rules.v4), [
    `-A PREROUTING -p tcp ${c('send inbound TCP to the inbound capture chain')} -j JIBE_INBOUND`,
    `-A JIBE_INBOUND -p tcp -m tcp --dport 9080 ${c('capture inbound TCP to port 9080')} -j JIBE_IN_REDIRECT`,
    `-A JIBE_INBOUND -p tcp -m tcp --dport 8080 ${c('capture inbound TCP to port 8080')} -j JIBE_IN_REDIRECT`,
    `-A JIBE_IN_REDIRECT -p tcp ${c('hand captured inbound TCP to the proxy on port 16006')} -j REDIRECT --to-ports 16006`,
    `-A OUTPUT -p tcp ${c('send outbound TCP to the outbound capture chain')} -j JIBE_OUTPUT`,
    `-A JIBE_OUTPUT -m owner --uid-owner 2000 ${c('traffic of the proxy itself (uid 2000) is not captured, else it would loop')} -j RETURN`,
    `-A JIBE_OUTPUT -m owner --gid-owner 2001 ${c('traffic of the proxy itself (gid 2001) is not captured, else it would loop')} -j RETURN`,
    `-A JIBE_OUTPUT -d 192.0.2.7/32 ${c('the control plane stays reachable without the proxy')} -j RETURN`,
    `-A JIBE_OUTPUT -d 127.0.0.1/32 ${c('loopback traffic is not captured')} -j RETURN`,
    `-A JIBE_OUTPUT -d 10.96.0.1/32 ${c('destination 10.96.0.1/32 is excluded from capture')} -j RETURN`,
    `-A JIBE_OUTPUT -d 10.1.0.0/16 ${c('destination 10.1.0.0/16 is excluded from capture')} -j RETURN`,
    `-A JIBE_OUTPUT -p tcp -m tcp --dport 22 ${c('outbound port 22 is excluded from capture')} -j RETURN`,
    `-A JIBE_OUTPUT -p tcp -m tcp --dport 3306 ${c('capture outbound TCP to port 3306 whatever the destination')} -j JIBE_REDIRECT`,
    `-A JIBE_OUTPUT -d 10.0.0.0/8 ${c('capture outbound TCP to 10.0.0.0/8')} -j JIBE_REDIRECT`,
    `-A JIBE_REDIRECT -p tcp ${c('hand captured outbound TCP to the proxy on port 16001')} -j REDIRECT --to-ports 16001`,
  ]);
  assert.deepEqual(rules.v6, [], 'IPv6 CIDRs are ignored while ipv6 is off');
});

test('no inbound ports: no inbound chains and no PREROUTING jump', () => {
  const rules = buildCaptureRules({ includeInboundPorts: [] });
  assert.ok(rules.v4.every((r) => r.chain !== 'PREROUTING' && !r.chain.startsWith('JIBE_IN')));
  assert.ok(rules.v4.some((r) => r.chain === 'OUTPUT'));
});

test('IPv6 and DNS capture: ip6tables rules with ::1 and v6 CIDRs; DNS before the loopback exclusion', () => {
  const rules = buildCaptureRules({ ipv6: true, dns: { enabled: true }, excludeOutboundCidrs: ['10.0.0.0/8', 'FD00:0:0:0::1/8'], controlPlane: { address: '2001:db8::5', port: 15012 } });
  const v6out = lines(rules.v6).filter((l) => l.startsWith('-A JIBE_OUTPUT') || l.startsWith('-A OUTPUT'));
  assert.deepEqual(v6out, [
    `-A OUTPUT -p tcp ${c('send outbound TCP to the outbound capture chain')} -j JIBE_OUTPUT`,
    `-A OUTPUT -p udp -m udp --dport 53 ${c('send outbound DNS over UDP to the outbound capture chain')} -j JIBE_OUTPUT`,
    `-A JIBE_OUTPUT -m owner --uid-owner 1337 ${c('traffic of the proxy itself (uid 1337) is not captured, else it would loop')} -j RETURN`,
    `-A JIBE_OUTPUT -m owner --gid-owner 1337 ${c('traffic of the proxy itself (gid 1337) is not captured, else it would loop')} -j RETURN`,
    `-A JIBE_OUTPUT -d 2001:db8::5/128 -p tcp -m tcp --dport 15012 ${c('the control plane stays reachable without the proxy')} -j RETURN`,
    `-A JIBE_OUTPUT -p udp -m udp --dport 53 ${c('capture DNS over UDP to the proxy on port 15053')} -j REDIRECT --to-ports 15053`,
    `-A JIBE_OUTPUT -p tcp -m tcp --dport 53 ${c('capture DNS over TCP to the proxy on port 15053')} -j REDIRECT --to-ports 15053`,
    `-A JIBE_OUTPUT -d ::1/128 ${c('loopback traffic is not captured')} -j RETURN`,
    `-A JIBE_OUTPUT -d fd00::/8 ${c('destination fd00::/8 is excluded from capture')} -j RETURN`,
    `-A JIBE_OUTPUT ${c('capture all other outbound TCP')} -j JIBE_REDIRECT`,
  ]);
  const v4 = lines(rules.v4);
  assert.ok(v4.includes(`-A JIBE_OUTPUT -d 10.0.0.0/8 ${c('destination 10.0.0.0/8 is excluded from capture')} -j RETURN`));
  assert.ok(!v4.some((l) => l.includes('2001:db8') || l.includes('fd00')), 'no v6 address in v4 rules');
  assert.ok(!v4.some((l) => l.includes('control plane')), 'a v6 control plane is excluded in v6 only');
  assert.equal(lines(rules.v6).filter((l) => l.startsWith('-A JIBE_IN')).length, lines(rules.v4).filter((l) => l.startsWith('-A JIBE_IN')).length);
});

test('every rule of every shape carries a jibe comment that iptables accepts', () => {
  const shapes = [{}, { ipv6: true, dns: { enabled: true } }, { includeInboundPorts: [1, 2], includeOutboundCidrs: ['10.0.0.0/8'], excludeOutboundPorts: [5], controlPlane: { address: '10.0.0.1', port: 1 } }];
  for (const shape of shapes) {
    const rules = buildCaptureRules(shape);
    for (const r of [...rules.v4, ...rules.v6]) {
      assert.ok(r.comment.length > 0, `${r.chain} ${r.args.join(' ')} has no comment`);
      assert.ok(('jibe: ' + r.comment).length <= 256, 'iptables comments are at most 256 bytes');
      assert.doesNotMatch(r.comment, /["'\n\\]/);
      assert.equal(r.table, 'nat');
      assert.equal(r.args.at(-1) === 'RETURN' || r.args.includes('-j'), true);
    }
  }
});

test('renderRestore: one transaction, chains declared, chain rules before the jumps into them', () => {
  assert.equal(
    renderRestore(buildCaptureRules().v4),
    [
      '*nat',
      ':JIBE_INBOUND - [0:0]',
      ':JIBE_IN_REDIRECT - [0:0]',
      ':JIBE_OUTPUT - [0:0]',
      ':JIBE_REDIRECT - [0:0]',
      ...DEFAULT_V4.filter((l) => l.startsWith('-A JIBE_')),
      DEFAULT_V4[0],
      DEFAULT_V4[5],
      'COMMIT',
      '',
    ].join('\n'),
  );
});

test('renderCommands and renderDryRun: shell commands, comments single-quoted, ip6tables for v6', () => {
  const cmds = renderCommands(buildCaptureRules().v4);
  assert.equal(cmds[0], 'iptables -t nat -N JIBE_INBOUND');
  assert.equal(cmds.length, 4 + DEFAULT_V4.length);
  assert.equal(cmds.at(-1), `iptables -t nat -A OUTPUT -p tcp -m comment --comment 'jibe: send outbound TCP to the outbound capture chain' -j JIBE_OUTPUT`);
  const dry = renderDryRun(buildCaptureRules({ ipv6: true }));
  assert.match(dry, /^ip6tables -t nat -A JIBE_OUTPUT -d ::1\/128 -m comment --comment 'jibe: loopback traffic is not captured' -j RETURN$/m);
  assert.ok(dry.endsWith('\n'));
});

test('invalid options are refused with the field named', () => {
  const cases: [CaptureOptions, string][] = [
    [{ inboundPort: 0 }, 'inboundPort'],
    [{ outboundPort: 70000 }, 'outboundPort'],
    [{ proxyUid: -1 }, 'proxyUid'],
    [{ excludeInboundPorts: [80, 1.5] }, 'excludeInboundPorts[1]'],
    [{ excludeOutboundCidrs: ['10.0.0.0/33'] }, 'excludeOutboundCidrs[0]'],
    [{ includeOutboundCidrs: ['example.com'] }, 'includeOutboundCidrs[0]'],
    [{ controlPlane: { address: 'jibe.example.com' } }, 'controlPlane.address'],
    [{ controlPlane: { address: '10.0.0.0/8' } }, 'controlPlane.address'],
    [{ dns: { enabled: true, port: -5 } }, 'dns.port'],
  ];
  for (const [options, field] of cases) {
    assert.throws(() => buildCaptureRules(options), (e: unknown) => e instanceof JibeError && e.code === 'JIBE_ERR_CAPTURE_CONFIG' && e.details.field === field, field);
  }
});
