// What the exchange needs from the downstream side of a request: the request
// head, its body (pulled with backpressure) and a response writer. Keeps
// forward-request.ts and local-reply.ts independent of how HTTP/1.1 is
// spoken to the client (http1/http1-server-connection.ts).

export interface Downstream {
  /** 1 for HTTP/1.x clients, 2 for HTTP/2 (streams: no connection-level headers, trailers always allowed). */
  readonly httpVersion: 1 | 2;
  readonly method: string;
  /** The request target as received (origin-, absolute-, asterisk-form). */
  readonly target: string;
  /** Raw flat header list [name, value, …]. */
  readonly rawHeaders: string[];
  readonly remoteAddress: string;
  /** The whole request body has been received. */
  readonly bodyComplete: boolean;
  readonly headersSent: boolean;
  readonly statusCode: number;
  /** The whole response has been written. */
  readonly finished: boolean;
  readonly destroyed: boolean;
  /** Writes the status line and headers; false when `validate` finds a value that cannot be sent. */
  writeHead(status: number, headers: string[], validate: boolean): boolean;
  /** Writes a body slice; false when the client pushes back (a drain follows). */
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): void;
  /**
   * Ends the response with trailer fields (flat list). HTTP/2 sends them as a
   * trailing HEADERS frame; HTTP/1.1 only in a chunked response to a client
   * that sent `te: trailers`, else they are dropped (as Envoy does).
   */
  endWithTrailers(trailers: string[]): void;
  /**
   * Resets the client's request: HTTP/2 resets only its stream (with `code`,
   * an RST_STREAM error code, INTERNAL_ERROR by default); HTTP/1.1 closes the
   * connection (a truncated response must not look whole).
   */
  destroy(code?: number): void;
  /** Trailer fields the client sent after its request body (flat list; HTTP/2 only), once `bodyEnd` came. */
  readonly requestTrailers: string[] | undefined;
  /** Starts handing the request body to the server handler's `body`/`bodyEnd`. */
  readBody(): void;
  pauseBody(): void;
  resumeBody(): void;
  /** Reads and drops the rest of the request body; the connection closes after the response. */
  discardBody(): void;
}
