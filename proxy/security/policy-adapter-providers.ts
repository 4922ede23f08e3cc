// The proxy's policy adapters as the mesh configures them: the `mesh`
// resource's extensionProviders become adapters through the adapter-kind
// plugins, next to any adapters registered in code. A config change builds
// the next registry beside the running one (an adapter whose provider config
// is unchanged is kept, with its quota buckets); the swap happens only when
// the whole update is accepted, and a provider that cannot be built rejects
// the update (NACK) while the running adapters keep serving.
import { JibeError } from '../../core/errors/errors.ts';
import type { PolicyAdapterPlugin, PolicyProviderConfig } from '../../core/model/policy-adapter.ts';
import type { PolicyAdapter } from './policy-adapter.ts';
import { PolicyAdapterRegistry } from './policy-adapter.ts';

interface Built {
  /** The provider config as received, to tell an unchanged provider from a changed one. */
  signature: string;
  adapter: PolicyAdapter;
}

export interface AdapterChange {
  registry: PolicyAdapterRegistry;
  /** Makes `registry` current and releases the adapters it dropped. */
  commit(): void;
  /** Releases what this change built; the running registry stays. */
  abort(): void;
}

export class ProviderAdapters {
  private readonly fixed: PolicyAdapter[];
  private readonly plugins = new Map<string, PolicyAdapterPlugin<PolicyAdapter>>();
  private built = new Map<string, Built>();
  current: PolicyAdapterRegistry;

  /** @throws JibeError JIBE_ERR_PLUGIN_DUPLICATE when two plugins share a kind name. */
  constructor(fixed: PolicyAdapterRegistry | undefined, plugins: PolicyAdapterPlugin<PolicyAdapter>[]) {
    this.fixed = fixed === undefined ? [] : fixed.names().map((n) => fixed.get(n));
    for (const p of plugins) {
      if (this.plugins.has(p.name)) throw new JibeError('JIBE_ERR_PLUGIN_DUPLICATE', `two policy adapter plugins are registered as ${JSON.stringify(p.name)}`);
      this.plugins.set(p.name, p);
    }
    this.current = new PolicyAdapterRegistry(this.fixed);
  }

  /** Whether `providers` differ from what the running registry was built from. */
  changed(providers: PolicyProviderConfig[] | undefined): boolean {
    const list = providers ?? [];
    if (list.length !== this.built.size) return true;
    return list.some((p) => this.built.get(p?.name)?.signature !== JSON.stringify(p));
  }

  /**
   * Builds the registry for `providers`.
   * @throws JibeError (PLUGIN_UNKNOWN for a kind no plugin implements, PLUGIN_DUPLICATE for a name
   *   taken twice or by a code-registered adapter, CONFIG_REJECTED when a plugin refuses the config).
   */
  async prepare(providers: PolicyProviderConfig[] | undefined): Promise<AdapterChange> {
    const next = new Map<string, Built>();
    const created: PolicyAdapter[] = [];
    const release = () => {
      for (const a of created) a.close?.();
    };
    try {
      if (providers !== undefined && !Array.isArray(providers)) throw rejected('mesh.extensionProviders must be a list');
      for (const [i, p] of (providers ?? []).entries()) {
        if (p === null || typeof p !== 'object' || typeof p.name !== 'string' || p.name === '') throw rejected(`mesh.extensionProviders[${i}] needs a name`);
        if (next.has(p.name)) throw new JibeError('JIBE_ERR_PLUGIN_DUPLICATE', `extension provider ${JSON.stringify(p.name)} appears twice in the mesh config`);
        const signature = JSON.stringify(p);
        const kept = this.built.get(p.name);
        if (kept?.signature === signature) {
          next.set(p.name, kept);
          continue;
        }
        const adapter = await this.create(p);
        created.push(adapter);
        next.set(p.name, { signature, adapter });
      }
      const registry = new PolicyAdapterRegistry(this.fixed);
      for (const b of next.values()) registry.register(b.adapter);
      return {
        registry,
        commit: () => {
          for (const [name, b] of this.built) if (next.get(name)?.adapter !== b.adapter) b.adapter.close?.();
          this.built = next;
          this.current = registry;
        },
        abort: release,
      };
    } catch (err) {
      release();
      throw err;
    }
  }

  close(): void {
    for (const b of this.built.values()) b.adapter.close?.();
    this.built.clear();
  }

  private async create(p: PolicyProviderConfig): Promise<PolicyAdapter> {
    const plugin = this.plugins.get(p.kind);
    if (plugin === undefined) {
      throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', `extension provider ${JSON.stringify(p.name)} is of kind ${JSON.stringify(p.kind)}, which no policy adapter plugin implements`, {
        hint: this.plugins.size ? `plugins: ${[...this.plugins.keys()].join(', ')}` : 'this proxy has no policy adapter plugins (jibe proxy registers the built-in ones)',
      });
    }
    try {
      const adapter = await plugin.create(p);
      if (adapter.name !== p.name) throw new Error(`the plugin named the adapter ${JSON.stringify(adapter.name)}`);
      return adapter;
    } catch (err) {
      throw rejected(`extension provider ${JSON.stringify(p.name)} (${p.kind}): ${(err as Error).message}`);
    }
  }
}

function rejected(message: string): JibeError {
  return new JibeError('JIBE_ERR_CONFIG_REJECTED', message, { resource: 'mesh', field: 'extensionProviders' });
}
