// Counters the data plane bumps on the hot path: plain integer fields on
// long-lived objects (no maps, no labels, no strings per request). The admin
// server renders them as Envoy-style `name: value` lines on demand.

import type { ProxyTelemetry } from '../telemetry/proxy-telemetry.ts';

export class ClusterStats {
  upstream_rq_total = 0;
  upstream_rq_active = 0;
  upstream_rq_2xx = 0;
  upstream_rq_3xx = 0;
  upstream_rq_4xx = 0;
  upstream_rq_5xx = 0;
  upstream_rq_timeout = 0;
  upstream_cx_total = 0;
  upstream_cx_active = 0;
  upstream_cx_connect_fail = 0;
  upstream_rq_no_healthy = 0;
  /** Circuit breakers: requests answered 503 UO (requests, pending or connection limits). */
  upstream_rq_pending_overflow = 0;
  /** Requests waiting in the endpoint pools for a connection (gauge). */
  upstream_rq_pending_active = 0;
  /** A new connection was refused by the cluster's maxConnections. */
  upstream_cx_overflow = 0;
  /** Retries in flight (gauge) and retries refused by maxRetries or the retry budget. */
  upstream_rq_retry_active = 0;
  upstream_rq_retry_overflow = 0;
  /** Retries sent; retried requests whose next answer was not retriable; requests out of attempts (Envoy's names). */
  upstream_rq_retry = 0;
  upstream_rq_retry_success = 0;
  upstream_rq_retry_limit_exceeded = 0;
  /** Retries the Linkerd-style retry budget refused (also counted in upstream_rq_retry_overflow). */
  upstream_rq_retry_budget_exhausted = 0;
  /** A retriable failure came while the request body was still arriving: not retried (Envoy's rq_retry_skipped_request_not_complete). */
  upstream_rq_retry_skipped_request_not_complete = 0;
  /** A request body outgrew the replay buffer: it can be neither retried nor mirrored (Envoy's retry_or_shadow_abandoned). */
  retry_or_shadow_abandoned = 0;
  /** Tries cut by the route's perTryTimeout. */
  upstream_rq_per_try_timeout = 0;
  /** Mirroring, counted on the mirror cluster: shadow requests sent, failed (no answer, reset, timeout, 5xx), and skipped (not sent). */
  upstream_rq_shadow = 0;
  upstream_rq_shadow_failed = 0;
  upstream_rq_shadow_skipped = 0;
  outlier_detection_ejections_active = 0;
  outlier_detection_ejections_total = 0;
  /** An ejection was due but maxEjectionPercent was reached. */
  outlier_detection_ejections_overflow = 0;
  outlier_detection_ejections_detected_consecutive_5xx = 0;
  outlier_detection_ejections_detected_consecutive_gateway_failure = 0;
  /** TCP proxying: a connection found no healthy endpoint (UH). */
  upstream_cx_none_healthy = 0;
  upstream_cx_connect_timeout = 0;
  /** TCP proxying: bytes relayed, added when a connection closes. */
  upstream_cx_rx_bytes_total = 0;
  upstream_cx_tx_bytes_total = 0;
}

export class ProxyStats {
  /** Istio metrics, access log and tracing (proxy/telemetry): told when each exchange and TCP session ends. */
  telemetry: ProxyTelemetry | undefined = undefined;
  downstream_cx_total = 0;
  downstream_cx_active = 0;
  downstream_rq_total = 0;
  downstream_rq_active = 0;
  downstream_rq_1xx = 0;
  downstream_rq_2xx = 0;
  downstream_rq_3xx = 0;
  downstream_rq_4xx = 0;
  downstream_rq_5xx = 0;
  downstream_rq_client_error = 0;
  downstream_cx_connect_tunnel = 0;
  /** Connections relayed as bytes (tcp listeners, passthrough). */
  tcp_downstream_cx_total = 0;
  tcp_downstream_cx_active = 0;
  /** Capture: no listener covers the original destination and nothing else applies (NR). */
  tcp_downstream_cx_no_route = 0;
  /** Outbound capture under ALLOW_ANY: relayed to the original destination (Istio's PassthroughCluster). */
  tcp_passthrough_cx_total = 0;
  /** Outbound capture under REGISTRY_ONLY: refused (Istio's BlackHoleCluster). */
  tcp_blackhole_cx_total = 0;
  /** A connection that would reach the proxy itself again (capture loop) was refused. */
  tcp_loop_refused = 0;
  /** Inbound TCP connections AuthorizationPolicy allowed / reset (Envoy's tcp rbac.allowed / rbac.denied). */
  tcp_rbac_allowed = 0;
  tcp_rbac_denied = 0;
  /** Protocol sniffing saw nothing in time (server-first protocol) and fell back to TCP. */
  protocol_sniff_timeout = 0;
  /** Resilience filters: local rate limit, fault injection, CORS. */
  local_rate_limit_ok = 0;
  local_rate_limit_rate_limited = 0;
  fault_delays_injected = 0;
  fault_aborts_injected = 0;
  cors_preflight_answered = 0;
  config_update_success = 0;
  config_update_rejected = 0;
  /** Mesh mTLS (Envoy's ssl.* stats): handshakes accepted, and refusals by reason. */
  ssl_handshake = 0;
  ssl_fail_verify_no_cert = 0;
  ssl_fail_verify_error = 0;
  ssl_fail_verify_expired = 0;
  ssl_fail_verify_san = 0;
  ssl_connection_error = 0;
  /** STRICT: a plaintext connection was refused (or TLS arrived while the proxy has no certificate). */
  ssl_plaintext_refused = 0;
  /** Upstream TLS: handshakes made, and failures (secure naming refusals among them). */
  ssl_upstream_handshake = 0;
  ssl_upstream_fail_verify_san = 0;
  ssl_upstream_connection_error = 0;

  /** Per cluster name; entries live as long as the cluster is in the config. */
  readonly clusters = new Map<string, ClusterStats>();

  cluster(name: string): ClusterStats {
    let stats = this.clusters.get(name);
    if (stats === undefined) {
      stats = new ClusterStats();
      this.clusters.set(name, stats);
    }
    return stats;
  }

  /** Counts a response sent downstream, by status class. */
  countDownstreamStatus(status: number): void {
    if (status < 200) this.downstream_rq_1xx++;
    else if (status < 300) this.downstream_rq_2xx++;
    else if (status < 400) this.downstream_rq_3xx++;
    else if (status < 500) this.downstream_rq_4xx++;
    else this.downstream_rq_5xx++;
  }

  /** Text form for `/stats`: one `name: value` line per counter, clusters as `cluster.<name>.<counter>`. */
  render(): string {
    const lines: string[] = [];
    for (const [key, value] of Object.entries(this)) {
      if (typeof value === 'number') lines.push(`${key}: ${value}`);
    }
    let cxActive = 0;
    for (const stats of this.clusters.values()) cxActive += stats.upstream_cx_active;
    lines.push(`upstream_cx_active: ${cxActive}`);
    const names = [...this.clusters.keys()].sort();
    for (const name of names) {
      const stats = this.clusters.get(name)!;
      for (const [key, value] of Object.entries(stats)) lines.push(`cluster.${name}.${key}: ${value}`);
    }
    return lines.join('\n') + '\n';
  }
}

export function countClusterStatus(stats: ClusterStats, status: number): void {
  if (status < 300) stats.upstream_rq_2xx++;
  else if (status < 400) stats.upstream_rq_3xx++;
  else if (status < 500) stats.upstream_rq_4xx++;
  else stats.upstream_rq_5xx++;
}
