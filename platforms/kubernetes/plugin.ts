// Registers the kubernetes platform for every plugin interface it implements.
// Only this file is imported by cli/plugins.ts; the client and everything
// behind it load when a plugin is created, so `jibe proxy` never pulls them in.
import type { Authenticator } from '../../core/ca/authenticator.ts';
import type { ConfigStore } from '../../core/config/config-store.ts';
import type { Plugin } from '../../core/plugins/plugin-tokens.ts';
import type { PlatformRegistry } from '../../core/registry/platform-registry.ts';
import type { StateStore } from '../../core/state/state-store.ts';
import type { KubeClient } from './kube-client.ts';
import { KUBERNETES_TOKEN_TYPE } from './authenticator-token-review.ts';

export interface KubernetesPluginSettings {
  kubeconfig?: string;
  /** Where the control plane keeps its state and lease (its own namespace). */
  namespace: string;
}

/** Set by `jibe control-plane --kubeconfig/--namespace` before plugins are created. */
export const kubernetesSettings: KubernetesPluginSettings = {
  kubeconfig: process.env.KUBECONFIG_JIBE,
  namespace: process.env.POD_NAMESPACE ?? 'jibe-system',
};

let shared: Promise<KubeClient> | undefined;
/** One client (one connection pool) for every kubernetes plugin of a control plane. */
export function sharedKubeClient(): Promise<KubeClient> {
  shared ??= import('./kube-client.ts').then(({ KubeClient }) => KubeClient.load({ kubeconfig: kubernetesSettings.kubeconfig }));
  return shared;
}

export const kubernetesRegistryPlugin: Plugin<PlatformRegistry> = {
  name: 'kubernetes',
  async create({ settings }) {
    const { KubernetesRegistry } = await import('./registry-kubernetes.ts');
    return new KubernetesRegistry(await sharedKubeClient(), { domain: settings.domain, trustDomain: settings.trustDomain });
  },
};

export const kubernetesConfigStorePlugin: Plugin<ConfigStore> = {
  name: 'kubernetes',
  async create() {
    const { KubernetesConfigStore } = await import('./config-store-kubernetes.ts');
    return KubernetesConfigStore.open(await sharedKubeClient());
  },
};

export const kubernetesStateStorePlugin: Plugin<StateStore> = {
  name: 'kubernetes',
  async create() {
    const { KubernetesStateStore } = await import('./state-store-kubernetes.ts');
    return new KubernetesStateStore(await sharedKubeClient(), { namespace: kubernetesSettings.namespace });
  },
};

/**
 * Every registered authenticator is active, also on control planes outside a
 * cluster: this one connects only when a Kubernetes token is presented.
 */
export const kubernetesAuthenticatorPlugin: Plugin<Authenticator> = {
  name: 'kubernetes-token-review',
  async create({ settings }) {
    let inner: Promise<Authenticator> | undefined;
    return {
      name: 'kubernetes-token-review',
      async authenticate(credential) {
        if (credential?.type !== KUBERNETES_TOKEN_TYPE) return undefined;
        inner ??= Promise.all([import('./authenticator-token-review.ts'), sharedKubeClient()]).then(
          ([{ TokenReviewAuthenticator }, client]) => new TokenReviewAuthenticator(client, { trustDomain: settings.trustDomain }),
        );
        return (await inner).authenticate(credential);
      },
    };
  },
};
