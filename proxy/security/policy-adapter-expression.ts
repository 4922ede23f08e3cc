// A deny adapter driven by a small, safe expression language over request
// attributes (no eval): the request is denied when the expression is true.
//   expr    := and ('||' and)*          and := unary ('&&' unary)*
//   unary   := '!' unary | '(' expr ')' | test
//   test    := attr [op value]          (an attribute alone: present and non-empty)
//   op      := == | != | startsWith | endsWith | contains | matches | in
//   value   := "string" | [ "a", "b" ]  (`in` takes a list; for IP attributes, CIDRs)
//   attr    := Istio's keys (`source.ip`, `request.headers[x-user]`,
//              `request.auth.claims[groups]`) and request.method/path/host
import { parseConditionKey } from '../../core/model/security.ts';
import { ipTest } from './authz-evaluator.ts';
import type { PolicyAdapter, PolicyVerdict } from './policy-adapter.ts';
import { ALLOW } from './policy-adapter.ts';
import type { RequestAttributes } from './request-attributes.ts';

type Expr = (a: RequestAttributes) => boolean;
const TOKEN = /\s*(\|\||&&|==|!=|!|\(|\)|\[|\]|,|"(?:[^"\\]|\\.)*"|[A-Za-z_][\w.-]*(?:\[[^\]]+\])*)/y;
const EXTRA_KEYS = new Set(['request.method', 'request.path', 'request.host']);
const OPERATORS = new Set(['==', '!=', 'startsWith', 'endsWith', 'contains', 'matches', 'in']);

/** @throws Error with the position of the first problem. */
export function compileExpression(source: string): Expr {
  const tokens: Array<{ t: string; at: number }> = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < source.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(source);
    if (m === null) {
      if (source.slice(at).trim() === '') break;
      throw new Error(`unexpected character at ${at}: ${JSON.stringify(source.slice(at, at + 10))}`);
    }
    tokens.push({ t: m[1], at });
  }
  let i = 0;
  const peek = () => tokens[i]?.t;
  const fail = (what: string): never => {
    throw new Error(`${what} at ${tokens[i]?.at ?? source.length}`);
  };
  const expect = (t: string) => (peek() === t ? i++ : fail(`expected ${t}`));
  const str = (): string => {
    const t = peek();
    if (t === undefined || !t.startsWith('"')) fail('expected a "string"');
    i++;
    return JSON.parse(t!) as string;
  };

  function or(): Expr {
    const parts = [and()];
    while (peek() === '||') {
      i++;
      parts.push(and());
    }
    return parts.length === 1 ? parts[0] : (a) => parts.some((p) => p(a));
  }
  function and(): Expr {
    const parts = [unary()];
    while (peek() === '&&') {
      i++;
      parts.push(unary());
    }
    return parts.length === 1 ? parts[0] : (a) => parts.every((p) => p(a));
  }
  function unary(): Expr {
    if (peek() === '!') {
      i++;
      const inner = unary();
      return (a) => !inner(a);
    }
    if (peek() === '(') {
      i++;
      const inner = or();
      expect(')');
      return inner;
    }
    return test();
  }
  function test(): Expr {
    const name = peek();
    if (name === undefined || !/^[A-Za-z_]/.test(name)) return fail('expected an attribute');
    const key = EXTRA_KEYS.has(name!) ? { base: name!, args: [] } : parseConditionKey(name!);
    if (key === undefined) return fail(`unknown attribute ${JSON.stringify(name)}`);
    i++;
    const get = (a: RequestAttributes) => a.values(key.base, key.args);
    const op = peek();
    if (op === undefined || !OPERATORS.has(op)) return (a) => get(a).some((v) => v !== '');
    i++;
    if (op === 'in') {
      expect('[');
      const list = [str()];
      while (peek() === ',') {
        i++;
        list.push(str());
      }
      expect(']');
      const ip = key.base.endsWith('.ip');
      const t = ip ? ipTest(list) : (v: string) => list.includes(v);
      return (a) => get(a).some(t);
    }
    const value = str();
    switch (op) {
      case '==':
        return (a) => get(a).includes(value);
      case '!=':
        return (a) => !get(a).includes(value);
      case 'startsWith':
        return (a) => get(a).some((v) => v.startsWith(value));
      case 'endsWith':
        return (a) => get(a).some((v) => v.endsWith(value));
      case 'contains':
        return (a) => get(a).some((v) => v.includes(value));
      default: {
        let re: RegExp;
        try {
          re = new RegExp(`^(?:${value})$`);
        } catch (e) {
          return fail(`invalid regex (${(e as Error).message})`);
        }
        return (a) => get(a).some((v) => re.test(v));
      }
    }
  }

  const expr = or();
  if (i < tokens.length) fail(`unexpected ${JSON.stringify(tokens[i].t)}`);
  return expr;
}

export function createDenyExpressionAdapter(name: string, expression: string, deny: { status?: number; body?: string } = {}): PolicyAdapter {
  const expr = compileExpression(expression);
  const verdict: PolicyVerdict = { allow: false, status: deny.status ?? 403, body: deny.body ?? 'RBAC: access denied' };
  return { name, check: (a) => (expr(a) ? verdict : ALLOW) };
}
