// Paths of the YAML fixtures and BookInfo's service hosts, shared by the config tests.
import { fileURLToPath } from 'node:url';
import { canonicalHost } from '../../../core/model/service.ts';

export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/** The services BookInfo deploys in `default`, as the registry names them. */
export function bookinfoHosts(): Set<string> {
  return new Set(['productpage', 'reviews', 'ratings', 'details'].map((n) => canonicalHost(n, 'default')));
}
