// Option parsers shared by the commands; they fail with a message naming the value.
import { InvalidArgumentError } from 'commander';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`"${value}" is not a port (0-65535).`);
  return n;
}

/**
 * A port, or `off` for a listener the user turns off. Off is `false`, not
 * undefined: commander stores an undefined parser result as ''.
 */
export function parsePortOrOff(value: string): number | false {
  return value === 'off' ? false : parsePort(value);
}

/** The port of a parsePortOrOff option, undefined when it is off. */
export function portOrUndefined(value: number | false | undefined): number | undefined {
  return value === false ? undefined : value;
}

/** `a=b,c=d` (repeatable) → {a: 'b', c: 'd'}. */
export function parseLabels(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const out = { ...previous };
  for (const pair of value.split(',').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`"${pair}" is not key=value.`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** ['8080=18080'] → {8080: 18080}. */
export function parsePortMap(values: string[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const v of values) {
    const [from, to] = v.split('=').map((p) => parsePort(p));
    if (from === undefined || to === undefined) throw new InvalidArgumentError(`"${v}" is not configPort=port.`);
    out[from] = to;
  }
  return out;
}
