// Registers the kubernetes platform for every plugin interface it implements.
// Only this file is imported by cli/plugins.ts; the client and everything
// behind it load when a plugin is created, so `jibe proxy` never pulls them in.
import type { Authenticator } from '../../core/ca/authenticator.ts';
import type { ConfigStore } from '../../core/config/config-store.ts';
import type { Plugin, PluginContext } from '../../core/plugins/plugin-tokens.ts';
import type { PlatformRegistry } from '../../core/registry/platform-registry.ts';
import type { StateStore } from '../../core/state/state-store.ts';
import type { KubeClient } from './kube-client.ts';
import type { InjectionOptions } from './inject-pod.ts';
import { KUBERNETES_TOKEN_TYPE } from './authenticator-token-review.ts';

/** `pluginOptions.kubernetes`, as `jibe control-plane --kubeconfig/--kube-context/--namespace/…` sets it. */
export interface KubernetesPluginSettings {
  /** Kubeconfig file; default `$KUBECONFIG_JIBE`, then kubeconfig's own rules (`$KUBECONFIG`, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  /** Kubeconfig context; default its current context. */
  context?: string;
  /** Where the control plane keeps its state and Lease (its own namespace); default `$POD_NAMESPACE`, else jibe-system. */
  namespace: string;
  /** Admission webhook port (15017); undefined = no webhook server. */
  webhookPort?: number;
  /** Where the webhook listens (default: the control plane's host). */
  webhookHost?: string;
  /** This replica's name in the leader Lease (default: POD_NAME, else the host name). */
  identity?: string;
  /** What injected sidecars run and dial. */
  injection?: Partial<InjectionOptions>;
  /** Leader work and root re-read period (default 60 s), and Lease timing: not flags, tests shorten them. */
  maintenanceIntervalMs?: number;
  lease?: { durationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
}

/** The settings a plugin context carries, with the environment as fallback (in-cluster: the Downward API). */
export function kubernetesSettings(context?: Pick<PluginContext, 'pluginOptions'>): KubernetesPluginSettings {
  const given = (context?.pluginOptions?.kubernetes ?? {}) as Partial<KubernetesPluginSettings>;
  return {
    ...given,
    kubeconfig: given.kubeconfig ?? process.env.KUBECONFIG_JIBE,
    namespace: given.namespace ?? process.env.POD_NAMESPACE ?? 'jibe-system',
  };
}

const clients = new Map<string, Promise<KubeClient>>();
/** One client (one connection pool) per kubeconfig and context, shared by every kubernetes plugin of a process. */
export function sharedKubeClient(settings: Pick<KubernetesPluginSettings, 'kubeconfig' | 'context'> = kubernetesSettings()): Promise<KubeClient> {
  const key = `${settings.kubeconfig ?? ''}\0${settings.context ?? ''}`;
  let client = clients.get(key);
  if (!client) {
    client = import('./kube-client.ts').then(({ KubeClient }) => KubeClient.load({ kubeconfig: settings.kubeconfig, context: settings.context }));
    // A failed load (a typo in the path) must not be cached for the next attempt.
    client.catch(() => clients.delete(key));
    clients.set(key, client);
  }
  return client;
}

export const kubernetesRegistryPlugin: Plugin<PlatformRegistry> = {
  name: 'kubernetes',
  async create(context) {
    const { settings, state, logger } = context;
    const kube = kubernetesSettings(context);
    const [{ KubernetesRegistry }, { KubernetesControlPlaneAddon }, client] = await Promise.all([
      import('./registry-kubernetes.ts'),
      import('./kube-control-plane-addon.ts'),
      sharedKubeClient(kube),
    ]);
    const registry = new KubernetesRegistry(client, { domain: settings.domain, trustDomain: settings.trustDomain, logger });
    const addon = new KubernetesControlPlaneAddon(
      { client, state, cachedNamespaceLabels: (ns) => registry.namespaceLabels(ns), meshNamespaces: () => registry.meshNamespaces(), onMeshNamespace: (l) => registry.onMeshNamespace(l) },
      {
        namespace: kube.namespace,
        webhookPort: kube.webhookPort,
        webhookHost: kube.webhookHost,
        identity: kube.identity,
        injection: kube.injection,
        maintenanceIntervalMs: kube.maintenanceIntervalMs,
        lease: kube.lease,
      },
    );
    // The registry doubles as the control-plane addon (webhooks, leader work): core starts it once the CA exists.
    return Object.assign(registry, { startAddon: addon.startAddon.bind(addon) });
  },
};

export const kubernetesConfigStorePlugin: Plugin<ConfigStore> = {
  name: 'kubernetes',
  async create(context) {
    const { KubernetesConfigStore } = await import('./config-store-kubernetes.ts');
    return KubernetesConfigStore.open(await sharedKubeClient(kubernetesSettings(context)));
  },
};

export const kubernetesStateStorePlugin: Plugin<StateStore> = {
  name: 'kubernetes',
  async create(context) {
    const { KubernetesStateStore } = await import('./state-store-kubernetes.ts');
    const kube = kubernetesSettings(context);
    return new KubernetesStateStore(await sharedKubeClient(kube), { namespace: kube.namespace });
  },
};

/**
 * Every registered authenticator is active, also on control planes outside a
 * cluster: this one connects only when a Kubernetes token is presented.
 */
export const kubernetesAuthenticatorPlugin: Plugin<Authenticator> = {
  name: 'kubernetes-token-review',
  async create(context) {
    let inner: Promise<Authenticator> | undefined;
    return {
      name: 'kubernetes-token-review',
      async authenticate(credential) {
        if (credential?.type !== KUBERNETES_TOKEN_TYPE) return undefined;
        inner ??= Promise.all([import('./authenticator-token-review.ts'), sharedKubeClient(kubernetesSettings(context))]).then(
          ([{ TokenReviewAuthenticator }, client]) => new TokenReviewAuthenticator(client, { trustDomain: context.settings.trustDomain }),
        );
        return (await inner).authenticate(credential);
      },
    };
  },
};
