import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRegex, RegexSyntaxError } from '../../../core/config/regex.ts';

test('matches the whole value, as RE2 full-match does in Istio', () => {
  const r = compileRegex('/api/v[0-9]+');
  assert.ok(r.test('/api/v12'));
  assert.ok(!r.test('/api/v1/users'));
  assert.ok(!r.test('x/api/v1'));
  const alt = compileRegex('a|bc');
  assert.ok(alt.test('a') && alt.test('bc'));
  assert.ok(!alt.test('abc'), 'alternation must not escape the anchors');
});

test('full match holds across lines, even with the multiline flag', () => {
  const r = compileRegex('(?m)a');
  assert.ok(r.test('a'));
  assert.ok(!r.test('a\nb'));
  assert.ok(!compileRegex('.*').test('a\nb'), 'dot does not match a newline without (?s)');
  assert.ok(compileRegex('(?s).*').test('a\nb'));
});

test('accepts RE2-only syntax with its RE2 meaning', () => {
  assert.ok(compileRegex('(?i).*chrome.*').test('Mozilla Chrome/120'));
  assert.ok(compileRegex('(?P<version>v[0-9]+)').test('v3'));
  assert.ok(compileRegex('[[:alpha:]_]+').test('end_user'));
  assert.ok(!compileRegex('[[:alpha:]]+').test('a1'));
  const bracket = compileRegex('[]a]+');
  assert.ok(bracket.test(']a]'), 'a ] first in a class is a literal');
  assert.ok(!compileRegex('[^]a]+').test(']'));
});

test('refuses invalid patterns and what RE2 lacks, saying why', () => {
  const cases: Array<[string, RegExp]> = [
    ['[a-z', /missing \]/],
    ['(', /Unterminated group/],
    ['a)|(b', /Unmatched/],
    ['(?=a)a', /lookahead and lookbehind/],
    ['(?<!a)b', /lookahead and lookbehind/],
    ['(a)\\1', /backreference/],
    ['(?U)a+', /ungreedy/],
    ['(?x)a', /unknown flag "x"/],
    ['[[:letters:]]', /unknown character class/],
  ];
  for (const [pattern, reason] of cases) {
    assert.throws(() => compileRegex(pattern), (e) => e instanceof RegexSyntaxError && reason.test(e.message), pattern);
  }
});
