// What telemetry learns about one exchange while it runs: body bytes and gRPC
// messages (counted from the length-prefixed frames as they stream), the gRPC
// status, this hop's trace context and the peer's metadata. The byte counters
// live on the exchange itself; the rest is allocated only when used.
import type { Exchange } from '../http/exchange.ts';
import type { IdentitySeries } from './istio-metrics.ts';
import type { TraceContext } from './trace-context.ts';

/** A gRPC length-prefixed message reader state: bytes left in the current message, or in its 5-byte prefix. */
class GrpcFrames {
  messages = 0;
  /** Bytes still to skip in the current message body. */
  bodyLeft = 0;
  /** Prefix bytes seen of the next message (0–4); its length is assembled in `length`. */
  prefixSeen = 0;
  length = 0;

  feed(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, n - i);
        this.bodyLeft -= take;
        i += take;
        continue;
      }
      // Prefix: 1 byte compressed flag, 4 bytes big-endian length.
      if (this.prefixSeen > 0) this.length = this.length * 256 + chunk[i];
      this.prefixSeen++;
      i++;
      if (this.prefixSeen === 5) {
        this.messages++;
        this.bodyLeft = this.length;
        this.prefixSeen = 0;
        this.length = 0;
      }
    }
  }
}

export class ExchangeTelemetry {
  trace: TraceContext | undefined = undefined;
  /** Inbound: the caller's identity series, from its peer metadata header. */
  peer: IdentitySeries | undefined = undefined;
  requestFrames: GrpcFrames | undefined = undefined;
  responseFrames: GrpcFrames | undefined = undefined;
}

export function exchangeTelemetry(ex: Exchange): ExchangeTelemetry {
  return (ex.telemetry ??= new ExchangeTelemetry());
}

/** Called with each request body chunk the client sends. */
export function observeRequestBody(ex: Exchange, chunk: Buffer): void {
  ex.requestBytes += chunk.length;
  if (ex.grpc) (exchangeTelemetry(ex).requestFrames ??= new GrpcFrames()).feed(chunk);
}

/** Called with each response body chunk relayed to the client. */
export function observeResponseBody(ex: Exchange, chunk: Buffer): void {
  ex.responseBytes += chunk.length;
  if (ex.grpc) (exchangeTelemetry(ex).responseFrames ??= new GrpcFrames()).feed(chunk);
}

/** Called with response headers or trailers (flat list) that may carry `grpc-status`. */
export function observeGrpcStatus(ex: Exchange, fields: readonly string[]): void {
  if (!ex.grpc) return;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i].length === 11 && fields[i].toLowerCase() === 'grpc-status') {
      const code = Number(fields[i + 1]);
      if (Number.isInteger(code) && code >= 0) ex.grpcStatus = code > 16 ? 2 : code;
      return;
    }
  }
}

/** Whether the response relayed so far ends on a gRPC message boundary (no message half sent). */
export function responseAtMessageBoundary(ex: Exchange): boolean {
  const frames = ex.telemetry?.responseFrames;
  return frames === undefined || (frames.bodyLeft === 0 && frames.prefixSeen === 0);
}

export function requestMessages(ex: Exchange): number {
  return ex.telemetry?.requestFrames?.messages ?? 0;
}

export function responseMessages(ex: Exchange): number {
  return ex.telemetry?.responseFrames?.messages ?? 0;
}
