// Regexes in rules use Istio's semantics: RE2 syntax, matched against the WHOLE
// value (`regex: "/api/v[0-9]+"` does not match `/api/v1/users`). The proxy runs
// JavaScript's engine, so this module is the one place that turns a rule's regex
// into a RegExp with those semantics and refuses what RE2 would refuse, so a rule
// means the same here as under Istio.

export class RegexSyntaxError extends Error {
  override name = 'RegexSyntaxError';
}

// Anchors that hold whatever the flags: JavaScript's ^ and $ follow the m flag,
// RE2's full match does not.
const START = '(?<![\\s\\S])';
const END = '(?![\\s\\S])';

/**
 * Compiles a rule's regex for full-value matching. Accepts RE2's leading flag
 * group (`(?i)`, `(?s)`, `(?m)`, combined like `(?is)`) and `(?P<name>…)` groups.
 * Throws RegexSyntaxError when the pattern is invalid or uses what RE2 lacks
 * (lookaround, backreferences), with a reason a user can act on.
 */
export function compileRegex(pattern: string): RegExp {
  let body = pattern;
  let flags = '';
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(body);
  if (lead) {
    for (const f of lead[1]) {
      if (f === 'i' || f === 's' || f === 'm') {
        if (!flags.includes(f)) flags += f;
      } else if (f === 'U') {
        throw new RegexSyntaxError('the ungreedy flag (?U) is not supported; make quantifiers lazy with ? instead');
      } else {
        throw new RegexSyntaxError(`unknown flag "${f}" in (?${lead[1]}); RE2 flags are i, m, s`);
      }
    }
    body = body.slice(lead[0].length);
  }
  body = rewriteForJs(body);
  try {
    // Compiled alone first: wrapped, `a)|(b` or `[a-z` could parse as something else.
    new RegExp(body, flags);
    return new RegExp(`${START}(?:${body})${END}`, flags);
  } catch (e) {
    throw new RegexSyntaxError((e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, ''));
  }
}

// RE2's POSIX classes, valid inside brackets (`[[:alpha:]_]`), as JS ranges.
const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/**
 * Walks the pattern once, tracking escapes and character classes, to reject
 * RE2-incompatible constructs and rewrite RE2-only syntax (`(?P<name>`, POSIX
 * classes, a leading `]` in a class) into JS with the same meaning.
 */
function rewriteForJs(p: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') {
      const next = p[i + 1];
      if (next === undefined) throw new RegexSyntaxError('trailing backslash');
      if (!inClass && /[1-9]/.test(next)) throw new RegexSyntaxError(`backreference \\${next} is not supported by RE2 (Istio's regex syntax)`);
      if (!inClass && next === 'k' && p[i + 2] === '<') throw new RegexSyntaxError('named backreference \\k<…> is not supported by RE2 (Istio\'s regex syntax)');
      out += c + next;
      i++;
      continue;
    }
    if (inClass) {
      const posix = c === '[' ? /^\[:(\^?)([a-z]+):\]/.exec(p.slice(i)) : null;
      if (posix) {
        const range = POSIX_CLASSES[posix[2]];
        if (!range) throw new RegexSyntaxError(`unknown character class [:${posix[2]}:]`);
        if (posix[1]) throw new RegexSyntaxError(`negated class [:^${posix[2]}:] is not supported; negate the whole bracket instead`);
        out += range;
        i += posix[0].length - 1;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A `]` right after `[` or `[^` is a literal in RE2 but closes an empty class in JS.
      if (p[i + 1] === '^') out += p[++i];
      if (p[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && p[i + 1] === '?') {
      const rest = p.slice(i + 2, i + 4);
      if (rest.startsWith('=') || rest.startsWith('!') || rest === '<=' || rest === '<!') {
        throw new RegexSyntaxError('lookahead and lookbehind are not supported by RE2 (Istio\'s regex syntax)');
      }
      if (p[i + 2] === 'P' && p[i + 3] === '<') {
        out += '(?<';
        i += 3;
        continue;
      }
    }
    out += c;
  }
  if (inClass) throw new RegexSyntaxError('missing ] to close a character class');
  return out;
}
