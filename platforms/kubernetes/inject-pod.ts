// Sidecar injection as a pure function of a pod template: the proxy container,
// an init container that installs traffic capture with the node agent's
// capture module (`jibe capture apply`), and the volumes they need. Used by
// `jibe kube-inject` (offline, any manifest) and by the mutating webhook, so
// both produce the same pod. Injecting an injected pod changes nothing.
import { DEFAULT_CAPTURE_CONFIG } from '../../agents/capture/capture-config.ts';
import { PROXY_CONTAINER } from './kube-convert.ts';
import { TOKEN_AUDIENCE } from './authenticator-token-review.ts';
import type { KubeContainer, KubeMeta, KubePodSpec } from './kube-types.ts';
import { TLS_MODE_LABEL } from '../../core/mesh/build-tls.ts';

export const INIT_CONTAINER = 'jibe-init';
export const INJECT_ANNOTATION = 'sidecar.jibe.dev/inject';
/** Istio's spelling, honoured so manifests written for Istio opt out the same way. */
export const ISTIO_INJECT_ANNOTATION = 'sidecar.istio.io/inject';
export const STATUS_ANNOTATION = 'sidecar.jibe.dev/status';
export const INJECTION_LABEL = 'jibe-injection';
export const TOKEN_VOLUME = 'jibe-token';
export const CERTS_VOLUME = 'jibe-certs';
export const TOKEN_MOUNT_PATH = '/var/run/secrets/jibe/tokens';
/** The mesh roots the control plane publishes into each meshed namespace (Istio's `istio-ca-root-cert`). */
export const CA_ROOT_CONFIGMAP = 'jibe-ca-root-cert';
export const CA_ROOT_KEY = 'root-cert.pem';
export const CA_ROOT_VOLUME = 'jibe-ca-root-cert';
export const CA_ROOT_MOUNT_PATH = '/var/run/jibe/ca';

export interface InjectionOptions {
  /** The Jibe image: it holds both `jibe proxy` and `jibe capture`. */
  image: string;
  /** Discovery address sidecars dial, `host:port` (15012: TLS with the workload certificate). */
  discoveryAddress: string;
  /** Control-plane TLS API the sidecar trades its projected token for a certificate at, verified with the mounted CA roots. */
  apiAddress?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Control-plane address kept out of capture so the proxy can always reach it. */
  proxyUid?: number;
}

export const DEFAULT_INJECTION: InjectionOptions = {
  image: 'jibe/jibe:0.1.0',
  discoveryAddress: 'jibe-control-plane.jibe-system.svc:15012',
  apiAddress: 'https://jibe-control-plane.jibe-system.svc:15015',
  imagePullPolicy: 'IfNotPresent',
};

/** The admin port's /ready (loopback only: it also serves config dumps), probed from inside the container. */
const READY_PROBE = "fetch('http://127.0.0.1:15000/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))";

/**
 * Whether a pod gets a sidecar. The pod's own word (annotation or label
 * `sidecar.jibe.dev/inject`, or Istio's) wins; else the namespace's
 * `jibe-injection` label; offline injection (`namespaceLabels` undefined)
 * injects unless the pod opts out, as `istioctl kube-inject` does.
 */
export function wantsInjection(meta: Pick<KubeMeta, 'annotations' | 'labels'>, namespaceLabels: Record<string, string> | undefined, spec?: KubePodSpec): boolean {
  if (spec?.hostNetwork === true) return false; // capture would rewrite the node's own traffic
  for (const source of [meta.annotations, meta.labels]) {
    for (const key of [INJECT_ANNOTATION, ISTIO_INJECT_ANNOTATION]) {
      const value = source?.[key];
      if (value === 'true' || value === 'enabled') return true;
      if (value === 'false' || value === 'disabled') return false;
    }
  }
  if (namespaceLabels === undefined) return true;
  return namespaceLabels[INJECTION_LABEL] === 'enabled';
}

export function isInjected(spec: KubePodSpec | undefined): boolean {
  return spec?.containers?.some((c) => c.name === PROXY_CONTAINER) ?? false;
}

/**
 * The injected pod template (a copy; the input is not touched). Returns the
 * input unchanged, by identity, when it already has the sidecar.
 */
export function injectPod<T extends { metadata?: Partial<KubeMeta>; spec: KubePodSpec }>(template: T, options: InjectionOptions = DEFAULT_INJECTION): T {
  if (isInjected(template.spec)) return template;
  const out = structuredClone(template);
  const spec = out.spec;
  const appContainers = spec.containers ?? [];
  const appPorts = appContainers.flatMap((c) => (c.ports ?? []).filter((p) => !p.protocol || p.protocol === 'TCP').map((p) => p.containerPort));
  const capture = DEFAULT_CAPTURE_CONFIG;
  const uid = options.proxyUid ?? capture.proxyUid;

  spec.initContainers = [...(spec.initContainers ?? []), initContainer(options, uid)];
  spec.containers = [...appContainers, proxyContainer(options, uid)];
  spec.volumes = [
    ...(spec.volumes ?? []),
    { name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 43_200, path: 'token' } }] } },
    { name: CERTS_VOLUME, emptyDir: { medium: 'Memory' } },
    // Not optional: a sidecar without roots could not verify the control plane, so the pod waits for the leader to publish them.
    { name: CA_ROOT_VOLUME, configMap: { name: CA_ROOT_CONFIGMAP, items: [{ key: CA_ROOT_KEY, path: CA_ROOT_KEY }] } },
  ];
  const meta = (out.metadata ??= {});
  // Istio's marker that this pod's sidecar takes mesh mTLS: auto mTLS dials it with TLS (core/mesh/build-tls.ts). A value the pod sets itself wins, as in Istio's template.
  meta.labels = { ...meta.labels, [TLS_MODE_LABEL]: meta.labels?.[TLS_MODE_LABEL] ?? 'istio' };
  meta.annotations = {
    ...meta.annotations,
    [STATUS_ANNOTATION]: JSON.stringify({ version: '0.1.0', initContainers: [INIT_CONTAINER], containers: [PROXY_CONTAINER], volumes: [TOKEN_VOLUME, CERTS_VOLUME, CA_ROOT_VOLUME], ports: [...new Set(appPorts)].sort((a, b) => a - b) }),
  };
  // `kubectl logs` and `exec` keep going to the app, not the sidecar.
  if (appContainers[0] && !meta.annotations['kubectl.kubernetes.io/default-container']) meta.annotations['kubectl.kubernetes.io/default-container'] = appContainers[0].name;
  return out;
}

function initContainer(options: InjectionOptions, uid: number): KubeContainer {
  const capture = DEFAULT_CAPTURE_CONFIG;
  return {
    name: INIT_CONTAINER,
    image: options.image,
    imagePullPolicy: options.imagePullPolicy ?? 'IfNotPresent',
    args: [
      'capture',
      'apply',
      '--proxy-uid', String(uid),
      '--proxy-gid', String(uid),
      '--inbound-port', String(capture.inboundPort),
      '--outbound-port', String(capture.outboundPort),
      '--include-inbound-ports', '*',
      '--exclude-inbound-ports', capture.excludeInboundPorts.join(','),
    ],
    // iptables needs NET_ADMIN/NET_RAW as root, in the pod's network namespace only.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
  };
}

function proxyContainer(options: InjectionOptions, uid: number): KubeContainer {
  const capture = DEFAULT_CAPTURE_CONFIG;
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });
  return {
    name: PROXY_CONTAINER,
    image: options.image,
    imagePullPolicy: options.imagePullPolicy ?? 'IfNotPresent',
    args: [
      'proxy',
      '--type', 'sidecar',
      '--platform', 'kubernetes',
      '--namespace', '$(POD_NAMESPACE)',
      '--workload', '$(POD_NAME)',
      '--discovery', options.discoveryAddress,
      '--kube-token-file', `${TOKEN_MOUNT_PATH}/token`,
      '--api', options.apiAddress ?? DEFAULT_INJECTION.apiAddress!,
      '--ca-root-file', `${CA_ROOT_MOUNT_PATH}/${CA_ROOT_KEY}`,
      '--service-account', '$(SERVICE_ACCOUNT)',
      '--bind', '0.0.0.0',
      '--capture',
      '--outbound-port', String(capture.outboundPort),
      '--inbound-capture-port', String(capture.inboundPort),
    ],
    env: [fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('INSTANCE_IP', 'status.podIP'), fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName')],
    ports: [{ name: 'http-jibe-prom', containerPort: 15090, protocol: 'TCP' }],
    // Ready once the first config is applied: until then the pod takes no traffic.
    readinessProbe: { exec: { command: ['node', '-e', READY_PROBE] }, initialDelaySeconds: 1, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 30 },
    securityContext: {
      runAsUser: uid,
      runAsGroup: uid,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '1Gi' } },
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true },
      { name: CERTS_VOLUME, mountPath: '/etc/jibe/certs' },
      { name: CA_ROOT_VOLUME, mountPath: CA_ROOT_MOUNT_PATH, readOnly: true },
    ],
  };
}

/** Where a manifest object keeps its pod template, for every workload kind that has one. */
export function podTemplateOf(obj: { kind?: string; spec?: Record<string, unknown> } & Record<string, unknown>): { metadata?: Partial<KubeMeta>; spec: KubePodSpec } | undefined {
  const spec = obj.spec as Record<string, unknown> | undefined;
  switch (obj.kind) {
    case 'Pod':
      return spec ? (obj as unknown as { metadata?: Partial<KubeMeta>; spec: KubePodSpec }) : undefined;
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'ReplicationController':
    case 'Job':
      return spec?.template as { metadata?: Partial<KubeMeta>; spec: KubePodSpec } | undefined;
    case 'CronJob':
      return ((spec?.jobTemplate as Record<string, unknown> | undefined)?.spec as Record<string, unknown> | undefined)?.template as { metadata?: Partial<KubeMeta>; spec: KubePodSpec } | undefined;
    default:
      return undefined;
  }
}
