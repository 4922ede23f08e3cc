// Header mutations (set / add / remove) from a route and its weighted cluster,
// merged at config time into one drop-set plus one list of headers to append,
// so forwarding applies them in the single pass that also strips hop-by-hop
// headers.
import type { HeaderMutation } from '../../core/model/proxy-config.ts';

export class CompiledHeaderMutation {
  /** Lower-case names whose incoming values are dropped (removed or overwritten by `set`). */
  readonly drop: ReadonlySet<string>;
  /** Flat `[name, value, name, value, …]` appended after the kept headers. */
  readonly append: readonly string[];
  readonly empty: boolean;

  constructor(drop: ReadonlySet<string>, append: readonly string[]) {
    this.drop = drop;
    this.append = append;
    this.empty = drop.size === 0 && append.length === 0;
  }

  static readonly NONE = new CompiledHeaderMutation(new Set(), []);
}

/** Merges layers in order: a later layer's remove/set overrides what earlier layers appended. */
export function compileHeaderMutations(...layers: Array<HeaderMutation | undefined>): CompiledHeaderMutation {
  const drop = new Set<string>();
  let pairs: Array<[string, string]> = [];
  for (const layer of layers) {
    if (layer === undefined) continue;
    for (const name of layer.remove ?? []) {
      const lower = name.toLowerCase();
      drop.add(lower);
      pairs = pairs.filter(([n]) => n.toLowerCase() !== lower);
    }
    for (const [name, value] of layer.set ?? []) {
      const lower = name.toLowerCase();
      drop.add(lower);
      pairs = pairs.filter(([n]) => n.toLowerCase() !== lower);
      pairs.push([name, value]);
    }
    for (const [name, value] of layer.add ?? []) pairs.push([name, value]);
  }
  if (drop.size === 0 && pairs.length === 0) return CompiledHeaderMutation.NONE;
  return new CompiledHeaderMutation(drop, pairs.flat());
}
