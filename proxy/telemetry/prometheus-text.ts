// A reader for the Prometheus text exposition format (version 0.0.4): what
// `jibe stat` / `jibe top` read from the proxies' `/stats/prometheus`, and
// what tests check the mesh's output with. Comments and TYPE/HELP lines are
// skipped; each sample becomes { name, labels, value }.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = NAME.exec(line);
    if (m === null) throw new Error(`not a Prometheus sample: ${line.slice(0, 80)}`);
    const name = m[0];
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        if (line[i] === ',') i++;
        if (line[i] === '}') break;
        const eq = line.indexOf('=', i);
        if (eq < 0 || line[eq + 1] !== '"') throw new Error(`bad label in: ${line.slice(0, 80)}`);
        const key = line.slice(i, eq).trim();
        let j = eq + 2;
        let value = '';
        while (j < line.length && line[j] !== '"') {
          if (line[j] === '\\') {
            const next = line[j + 1];
            value += next === 'n' ? '\n' : next;
            j += 2;
          } else {
            value += line[j++];
          }
        }
        if (j >= line.length) throw new Error(`unterminated label value in: ${line.slice(0, 80)}`);
        labels[key] = value;
        i = j + 1;
      }
      i++;
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const value = rest[0] === '+Inf' ? Infinity : rest[0] === '-Inf' ? -Infinity : Number(rest[0]);
    out.push({ name, labels, value });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include every pair of `match`. */
export function sumSamples(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    let ok = true;
    for (const key in match) if (s.labels[key] !== match[key]) ok = false;
    if (ok) total += s.value;
  }
  return total;
}
