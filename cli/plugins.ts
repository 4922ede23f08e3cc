// The one list of plugins. Adding a platform or a store = one line here.
// Plugins load their implementation lazily, so listing them costs nothing.
import 'reflect-metadata';
import { container } from 'tsyringe';
import type { DependencyContainer } from 'tsyringe';
import { AUTHENTICATOR, CONFIG_STORE, PLATFORM_REGISTRY, STATE_STORE } from '../core/plugins/plugin-tokens.ts';
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
  return c;
}
