// Parsing and diffing against iptables-save samples recorded from the real
// tool (fixtures/record.ts re-records them), so "already installed" is judged
// on the text iptables actually prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildCaptureRules } from '../../../agents/capture/capture-rules.ts';
import { extractTable, normalizeIptablesSave, parseIptablesSave, planCapture, planRemoval, tokenize } from '../../../agents/capture/iptables-state.ts';

const fixture = (name: string): string => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8');
const nat = (name: string) => parseIptablesSave(fixture(name)).tables.get('nat');
const FULL = { ipv6: true, dns: { enabled: true }, excludeOutboundCidrs: ['10.1.2.3/8', 'fd00::1/8'], controlPlane: { address: '192.0.2.5', port: 15012 }, excludeOutboundPorts: [22], includeOutboundPorts: [80] };

test('tokenize: double quotes, escapes, adjacent text', () => {
  assert.deepEqual(tokenize('-A X -m comment --comment "jibe: a \\"b\\" c" -j RETURN'), ['-A', 'X', '-m', 'comment', '--comment', 'jibe: a "b" c', '-j', 'RETURN']);
  assert.deepEqual(tokenize('  a  b"c d"e '), ['a', 'bc de']);
});

test('parse: backend, chains with policies, rules with comment and target, counters dropped', () => {
  const saved = parseIptablesSave(fixture('nat-default-counters.save'));
  assert.equal(saved.backend, 'nf_tables');
  const table = saved.tables.get('nat')!;
  assert.deepEqual(table.chains.map((c) => `${c.name} ${c.policy}`), ['PREROUTING ACCEPT', 'INPUT ACCEPT', 'OUTPUT ACCEPT', 'POSTROUTING ACCEPT', 'DOCKER -', 'JIBE_INBOUND -', 'JIBE_IN_REDIRECT -', 'JIBE_OUTPUT -', 'JIBE_REDIRECT -']);
  assert.deepEqual(table.rules[0], { chain: 'PREROUTING', tokens: ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'DOCKER'], comment: undefined, target: 'DOCKER' });
  assert.equal(table.rules[1].comment, 'jibe: send inbound TCP to the inbound capture chain');
  assert.equal(table.rules[1].target, 'JIBE_INBOUND');
  assert.equal(table.rules.length, 13);
});

test('normalize drops only the timestamped header and footer lines', () => {
  const a = fixture('nat-default.save');
  const b = a.replace(/on \w{3} \w{3} +\d+ [\d:]+ \d{4}/g, 'on Mon Jan  1 00:00:00 2001');
  assert.notEqual(a, b);
  assert.equal(normalizeIptablesSave(a), normalizeIptablesSave(b));
  assert.doesNotMatch(normalizeIptablesSave(a), /^#/m);
  assert.notEqual(normalizeIptablesSave(a), normalizeIptablesSave(a.replace(':INPUT ACCEPT [0:0]', ':INPUT ACCEPT [3:180]')), 'counters still count');
  assert.equal(extractTable(a, 'filter'), undefined);
  assert.match(extractTable(a, 'nat')!, /^\*nat\n[\s\S]*\nCOMMIT\n$/);
});

test('installed rules read back equal: nothing to do, on plain and counted dumps, v4 and v6', () => {
  for (const [file, rules] of [['nat-default.save', buildCaptureRules().v4], ['nat-default-counters.save', buildCaptureRules().v4], ['nat-full-v4.save', buildCaptureRules(FULL).v4], ['nat-full-v6.save', buildCaptureRules(FULL).v6]] as const) {
    // The v6 sample was taken where Jibe created the nat table: its marker chain stays.
    const plan = planCapture(rules, nat(file), file.includes('v6') ? ['JIBE_CREATED_NAT'] : []);
    assert.equal(plan.upToDate, true, file);
    assert.equal(plan.restore, '');
    assert.deepEqual(plan.missing, []);
    assert.deepEqual(plan.extra, []);
  }
});

test('fresh table with foreign rules: one transaction adds ours and leaves theirs', () => {
  const rules = buildCaptureRules().v4;
  const plan = planCapture(rules, nat('nat-foreign-only.save'));
  assert.equal(plan.upToDate, false);
  assert.equal(plan.missing.length, rules.length);
  assert.deepEqual(plan.extra, []);
  const lines = plan.restore.split('\n');
  assert.equal(lines[0], '*nat');
  assert.deepEqual(lines.filter((l) => l.startsWith(':')), [':JIBE_INBOUND - [0:0]', ':JIBE_IN_REDIRECT - [0:0]', ':JIBE_OUTPUT - [0:0]', ':JIBE_REDIRECT - [0:0]']);
  assert.ok(!plan.restore.includes('DOCKER') && !plan.restore.includes('MASQUERADE') && !plan.restore.includes('-D '));
  assert.deepEqual(lines.slice(-3), ['-A OUTPUT -p tcp -m comment --comment "jibe: send outbound TCP to the outbound capture chain" -j JIBE_OUTPUT', 'COMMIT', '']);
});

test('absent table: the marker chain is planned with the rest; an unkept marker is stale', () => {
  assert.match(planCapture(buildCaptureRules(FULL).v6, nat('nat-full-v6.save')).restore, /^-X JIBE_CREATED_NAT$/m);
  const plan = planCapture(buildCaptureRules().v4, undefined, ['JIBE_CREATED_NAT']);
  assert.match(plan.restore, /^:JIBE_CREATED_NAT - \[0:0\]$/m);
  assert.equal(planCapture(buildCaptureRules().v4, nat('nat-default.save'), ['JIBE_CREATED_NAT']).upToDate, false, 'a missing kept chain is a change');
});

test('stale install (DNS on, port 80) to defaults: drop the DNS jump, rewrite JIBE_OUTPUT only', () => {
  const plan = planCapture(buildCaptureRules().v4, nat('nat-stale.save'));
  assert.equal(plan.upToDate, false);
  assert.deepEqual(plan.restore.split('\n').filter((l) => !l.startsWith('-A JIBE_OUTPUT')), [
    '*nat',
    ':JIBE_OUTPUT - [0:0]',
    '-D OUTPUT -p udp -m udp --dport 53 -m comment --comment "jibe: send outbound DNS over UDP to the outbound capture chain" -j JIBE_OUTPUT',
    'COMMIT',
    '',
  ]);
  assert.equal(plan.restore.split('\n').filter((l) => l.startsWith('-A JIBE_OUTPUT')).length, 4);
  assert.equal(plan.extra.length, 4, 'two DNS redirects, port 80, the DNS jump');
  assert.deepEqual(plan.missing, [], 'every default rule exists, only extra ones sit between');
});

test('a stale chain and a duplicated jump are removed', () => {
  const text = fixture('nat-default.save')
    .replace(':JIBE_REDIRECT - [0:0]', ':JIBE_REDIRECT - [0:0]\n:JIBE_OLD - [0:0]')
    .replace('COMMIT', '-A JIBE_OLD -j RETURN\n-A OUTPUT -p tcp -m comment --comment "jibe: send outbound TCP to the outbound capture chain" -j JIBE_OUTPUT\nCOMMIT');
  const plan = planCapture(buildCaptureRules().v4, parseIptablesSave(text).tables.get('nat'));
  assert.deepEqual(plan.restore.split('\n'), [
    '*nat',
    '-D OUTPUT -p tcp -m comment --comment "jibe: send outbound TCP to the outbound capture chain" -j JIBE_OUTPUT',
    '-F JIBE_OLD',
    '-X JIBE_OLD',
    'COMMIT',
    '',
  ]);
});

test('planRemoval: our jumps, then flush, then delete every JIBE_ chain; foreign rules untouched', () => {
  assert.equal(
    planRemoval(nat('nat-full-v4.save')),
    [
      '*nat',
      '-D PREROUTING -p tcp -m comment --comment "jibe: send inbound TCP to the inbound capture chain" -j JIBE_INBOUND',
      '-D OUTPUT -p tcp -m comment --comment "jibe: send outbound TCP to the outbound capture chain" -j JIBE_OUTPUT',
      '-D OUTPUT -p udp -m udp --dport 53 -m comment --comment "jibe: send outbound DNS over UDP to the outbound capture chain" -j JIBE_OUTPUT',
      '-F JIBE_INBOUND', '-F JIBE_IN_REDIRECT', '-F JIBE_OUTPUT', '-F JIBE_REDIRECT',
      '-X JIBE_INBOUND', '-X JIBE_IN_REDIRECT', '-X JIBE_OUTPUT', '-X JIBE_REDIRECT',
      'COMMIT', '',
    ].join('\n'),
  );
  assert.ok(!planRemoval(nat('nat-full-v4.save')).includes('DOCKER'));
  assert.equal(planRemoval(nat('nat-foreign-only.save')), '');
  assert.equal(planRemoval(undefined), '');
});
