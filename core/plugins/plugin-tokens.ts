// One tsyringe token per plugin interface. Plugins are registered explicitly in
// cli/plugins.ts (never by import side effects) and chosen by name at start-up.
import type { Logger } from 'pino';
import type { DependencyContainer, InjectionToken } from 'tsyringe';
import type { Authenticator } from '../ca/authenticator.ts';
import { JibeError } from '../errors/errors.ts';
import type { ConfigStore } from '../config/config-store.ts';
import type { MeshSettings } from '../mesh/mesh-snapshot.ts';
import type { PolicyAdapterPlugin } from '../model/policy-adapter.ts';
import type { PlatformRegistry } from '../registry/platform-registry.ts';
import type { WorkloadRegistrar } from '../registry/workload-registrar.ts';
import type { StateStore } from '../state/state-store.ts';

/** What every plugin factory may use. */
export interface PluginContext {
  dataDir: string;
  settings: MeshSettings;
  /** The state store chosen for this control plane (absent while creating the state store itself). */
  state?: StateStore;
  /**
   * Settings for one plugin family, keyed by its name (`consul`: address, token,
   * datacenter, …), as the command line gave them. Core never reads them.
   */
  pluginOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Where plugins log (skipped registrations, outages); absent = silent. */
  logger?: Logger;
}

export interface Plugin<T> {
  name: string;
  create(context: PluginContext): Promise<T>;
}

export const CONFIG_STORE: InjectionToken<Plugin<ConfigStore>> = Symbol('ConfigStore');
export const STATE_STORE: InjectionToken<Plugin<StateStore>> = Symbol('StateStore');
/** Registries may also accept registrations (the `vm` platform does). */
export const PLATFORM_REGISTRY: InjectionToken<Plugin<PlatformRegistry & Partial<WorkloadRegistrar>>> = Symbol('PlatformRegistry');

/** Credential checkers the CA trusts; every registered one is active (each handles its own credential type). */
export const AUTHENTICATOR: InjectionToken<Plugin<Authenticator>> = Symbol('Authenticator');

/**
 * Policy adapter kinds (ext-authz-http, deny-expression, list, quota): the
 * proxy turns each MeshConfig extension provider into an adapter with the
 * plugin of its kind. Their factories take the provider's config, not a PluginContext.
 */
export const POLICY_ADAPTER: InjectionToken<PolicyAdapterPlugin> = Symbol('PolicyAdapter');

/** The registered policy adapter kinds. @throws JibeError JIBE_ERR_PLUGIN_DUPLICATE when two share a name. */
export function policyAdapterPlugins(container: DependencyContainer): PolicyAdapterPlugin[] {
  return pluginsOf(container, POLICY_ADAPTER);
}

/** Every plugin registered under a token, checked for duplicate names. */
export function pluginsOf<P extends { name: string }>(container: DependencyContainer, token: InjectionToken<P>): P[] {
  const plugins = container.isRegistered(token) ? container.resolveAll(token) : [];
  const seen = new Set<string>();
  for (const p of plugins) {
    if (seen.has(p.name)) {
      throw new JibeError('JIBE_ERR_PLUGIN_DUPLICATE', `two plugins are registered as "${p.name}" for ${String(token.toString())}`, { hint: 'register each plugin name once per family in cli/plugins.ts' });
    }
    seen.add(p.name);
  }
  return plugins;
}

export function pluginNamed<T>(container: DependencyContainer, token: InjectionToken<Plugin<T>>, name: string): Plugin<T> {
  const plugins = pluginsOf(container, token);
  const plugin = plugins.find((p) => p.name === name);
  if (!plugin) {
    throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', `no plugin named "${name}" for ${String(token.toString())}`, {
      hint: `choose one of: ${plugins.map((p) => p.name).join(', ') || '(none registered)'}`,
    });
  }
  return plugin;
}
