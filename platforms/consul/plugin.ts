// Registers the consul platform, stores and authenticator. Each plugin loads
// its implementation (and the Consul client) only when chosen.
import type { Authenticator } from '../../core/ca/authenticator.ts';
import type { ConfigStore } from '../../core/config/config-store.ts';
import { isDns1123Label } from '../../core/config/names.ts';
import { JibeError } from '../../core/errors/errors.ts';
import type { Plugin, PluginContext } from '../../core/plugins/plugin-tokens.ts';
import type { PlatformRegistry } from '../../core/registry/platform-registry.ts';
import type { StateStore } from '../../core/state/state-store.ts';

/** What `jibe control-plane --consul-*` passes as `pluginOptions.consul`. */
export interface ConsulPluginOptions {
  /** HTTP API address; default CONSUL_HTTP_ADDR, else 127.0.0.1:8500. */
  address?: string;
  /** ACL token; default CONSUL_HTTP_TOKEN. */
  token?: string;
  /** Datacenters the registry follows (comma-separated on the command line); default the agent's own. */
  datacenters?: string[];
  /** KV prefix of the config and state stores; default `jibe`. */
  kvPrefix?: string;
  /** Namespace of Consul services that name none; default `default`. */
  namespace?: string;
  /** A `warning` check counts as healthy (Consul DNS's default); otherwise only `passing` does. */
  warningIsHealthy?: boolean;
  /** Seals secret state values (the CA key) with a key derived from this file; without it they rely on ACLs. */
  secretKeyFile?: string;
}

export function consulOptions(context: PluginContext): ConsulPluginOptions {
  const raw = (context.pluginOptions?.consul ?? {}) as Record<string, unknown>;
  const text = (k: string) => (typeof raw[k] === 'string' && raw[k] !== '' ? (raw[k] as string) : undefined);
  const list = raw.datacenters;
  // Checked here so every Consul plugin refuses it at start (the registry would otherwise skip each service that inherits it).
  const namespace = text('namespace');
  if (namespace !== undefined && !isDns1123Label(namespace)) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `--consul-namespace ${JSON.stringify(namespace)} is not a DNS label`, { field: 'consul.namespace' });
  }
  return {
    address: text('address'),
    token: text('token'),
    datacenters: Array.isArray(list) ? list.map(String).filter(Boolean) : typeof list === 'string' ? list.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
    kvPrefix: text('kvPrefix'),
    namespace,
    warningIsHealthy: raw.warningIsHealthy === true,
    secretKeyFile: text('secretKeyFile'),
  };
}

async function clientFor(options: ConsulPluginOptions) {
  const { ConsulClient } = await import('./consul-client.ts');
  return new ConsulClient({ address: options.address, token: options.token });
}

export const consulRegistryPlugin: Plugin<PlatformRegistry> = {
  name: 'consul',
  async create(context) {
    const options = consulOptions(context);
    const { ConsulRegistry } = await import('./registry-consul.ts');
    return new ConsulRegistry(await clientFor(options), {
      convert: {
        domain: context.settings.domain,
        trustDomain: context.settings.trustDomain,
        namespace: options.namespace ?? 'default',
        warningIsHealthy: options.warningIsHealthy === true,
      },
      datacenters: options.datacenters,
      logger: context.logger?.child({ platform: 'consul' }),
    });
  },
};

export const consulConfigStorePlugin: Plugin<ConfigStore> = {
  name: 'consul',
  async create(context) {
    const options = consulOptions(context);
    const { ConsulConfigStore } = await import('./config-store-consul.ts');
    const { normalizePrefix } = await import('./consul-kv.ts');
    const logger = context.logger?.child({ store: 'consul-config' });
    return new ConsulConfigStore(await clientFor(options), {
      prefix: normalizePrefix(options.kvPrefix ?? 'jibe'),
      warn: logger ? (message) => logger.warn(message) : undefined,
    });
  },
};

export const consulStateStorePlugin: Plugin<StateStore> = {
  name: 'consul',
  async create(context) {
    const options = consulOptions(context);
    const { ConsulStateStore } = await import('./state-store-consul.ts');
    const { normalizePrefix } = await import('./consul-kv.ts');
    const { SecretBox } = await import('./consul-secret-box.ts');
    const client = await clientFor(options);
    // Fail at start, not at the first CA write, when Consul is missing or the token cannot use the prefix.
    const prefix = normalizePrefix(options.kvPrefix ?? 'jibe');
    await client.get(`/v1/kv/${prefix}state/`, { query: { keys: true }, accept: [404] });
    return new ConsulStateStore(client, { prefix, secrets: options.secretKeyFile ? await SecretBox.fromFile(options.secretKeyFile) : undefined });
  },
};

export const consulAuthenticatorPlugin: Plugin<Authenticator> = {
  name: 'consul-acl',
  async create(context) {
    const options = consulOptions(context);
    const { ConsulAclAuthenticator } = await import('./authenticator-consul-acl.ts');
    return new ConsulAclAuthenticator(await clientFor(options), {
      trustDomain: context.settings.trustDomain,
      namespace: options.namespace ?? 'default',
      datacenter: options.datacenters?.[0],
    });
  },
};
