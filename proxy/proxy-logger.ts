// The logger the proxy writes to: the subset of pino's API it uses, so a pino
// logger fits as is and tests can pass a recording one. Callers guard debug
// lines with `isLevelEnabled` so no string is built on the hot path when the
// level is off.

export interface ProxyLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  isLevelEnabled?(level: string): boolean;
}

export function debugEnabled(logger: ProxyLogger): boolean {
  return logger.isLevelEnabled ? logger.isLevelEnabled('debug') : false;
}
