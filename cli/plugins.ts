// The one list of plugins. Adding a platform or a store = one line here.
// Plugins load their implementation lazily, so listing them costs nothing.
import 'reflect-metadata';
import { container } from 'tsyringe';
import type { DependencyContainer } from 'tsyringe';
import type { PolicyAdapterKind, PolicyProviderConfig } from '../core/model/policy-adapter.ts';
import { AUTHENTICATOR, CONFIG_STORE, PLATFORM_REGISTRY, POLICY_ADAPTER, STATE_STORE } from '../core/plugins/plugin-tokens.ts';
import { consulAuthenticatorPlugin, consulConfigStorePlugin, consulRegistryPlugin, consulStateStorePlugin } from '../platforms/consul/plugin.ts';
import { vmRegistryPlugin } from '../platforms/vm/plugin.ts';
import { kubernetesAuthenticatorPlugin, kubernetesConfigStorePlugin, kubernetesRegistryPlugin, kubernetesStateStorePlugin } from '../platforms/kubernetes/plugin.ts';

export function registerPlugins(c: DependencyContainer = container.createChildContainer()): DependencyContainer {
  c.register(STATE_STORE, {
    useValue: { name: 'file', create: async ({ dataDir }) => (await import('../core/state/state-store-file.ts')).FileStateStore.open(dataDir) },
  });
  c.register(CONFIG_STORE, {
    useValue: { name: 'file', create: async ({ dataDir }) => (await import('../core/config/config-store-file.ts')).FileConfigStore.open(dataDir) },
  });
  c.register(PLATFORM_REGISTRY, { useValue: vmRegistryPlugin });
  c.register(PLATFORM_REGISTRY, { useValue: kubernetesRegistryPlugin });
  c.register(CONFIG_STORE, { useValue: kubernetesConfigStorePlugin });
  c.register(STATE_STORE, { useValue: kubernetesStateStorePlugin });
  c.register(PLATFORM_REGISTRY, { useValue: consulRegistryPlugin });
  c.register(CONFIG_STORE, { useValue: consulConfigStorePlugin });
  c.register(STATE_STORE, { useValue: consulStateStorePlugin });
  c.register(AUTHENTICATOR, { useValue: consulAuthenticatorPlugin });
  c.register(AUTHENTICATOR, {
    useValue: {
      name: 'bootstrap-token',
      create: async ({ state }) => {
        const { BootstrapTokenAuthenticator } = await import('../core/ca/authenticator-bootstrap-token.ts');
        if (!state) throw new Error('the bootstrap-token authenticator needs a state store');
        return new BootstrapTokenAuthenticator(state);
      },
    },
  });
  c.register(AUTHENTICATOR, {
    useValue: {
      name: 'vm-join-token',
      create: async ({ state }) => {
        const { JoinTokenAuthenticator } = await import('../platforms/vm/authenticator-join-token.ts');
        if (!state) throw new Error('the vm-join-token authenticator needs a state store');
        return new JoinTokenAuthenticator(state);
      },
    },
  });
  c.register(AUTHENTICATOR, { useValue: kubernetesAuthenticatorPlugin });
  // Policy adapter kinds: the proxy creates one adapter per MeshConfig extension provider.
  c.register(POLICY_ADAPTER, {
    useValue: {
      name: 'ext-authz-http',
      create: async (p) => {
        const e = ofKind(p, 'ext-authz-http');
        const { createExtAuthzAdapter } = await import('../proxy/security/policy-adapter-ext-authz.ts');
        return createExtAuthzAdapter(e.name, {
          url: e.url,
          timeoutMs: e.timeoutMs,
          failOpen: e.failOpen,
          statusOnError: e.statusOnError,
          includeRequestHeaders: e.includeRequestHeaders,
          headersToUpstream: e.headersToUpstream,
          headersToDownstream: e.headersToDownstream,
        });
      },
    },
  });
  c.register(POLICY_ADAPTER, {
    useValue: {
      name: 'deny-expression',
      create: async (p) => {
        const d = ofKind(p, 'deny-expression');
        return (await import('../proxy/security/policy-adapter-expression.ts')).createDenyExpressionAdapter(d.name, d.expression);
      },
    },
  });
  c.register(POLICY_ADAPTER, {
    useValue: {
      name: 'list',
      create: async (p) => {
        const l = ofKind(p, 'list');
        return (await import('../proxy/security/policy-adapter-lists.ts')).createListAdapter(l.name, { attribute: l.attribute, values: l.values, mode: l.mode });
      },
    },
  });
  c.register(POLICY_ADAPTER, {
    useValue: {
      name: 'quota',
      create: async (p) => {
        const q = ofKind(p, 'quota');
        return (await import('../proxy/security/policy-adapter-quota.ts')).createQuotaAdapter(q.name, q);
      },
    },
  });
  return c;
}

/** The proxy picks the plugin by `kind`; a mismatch is a wiring bug, said plainly rather than mis-read. */
function ofKind<K extends PolicyAdapterKind>(p: PolicyProviderConfig, kind: K): Extract<PolicyProviderConfig, { kind: K }> {
  if (p.kind !== kind) throw new Error(`the ${kind} plugin was given a ${p.kind} provider`);
  return p as Extract<PolicyProviderConfig, { kind: K }>;
}
