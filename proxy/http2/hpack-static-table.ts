// RFC 7541 Appendix A: the static table. Index 1 is the first pair; index 0 is never valid.

/** Number of entries in the static table; dynamic indices start after it. */
export const STATIC_TABLE_LENGTH = 61;

// Flat [name, value, …] so both lookups below are built from one literal.
const PAIRS: readonly string[] = [
  ':authority', '',
  ':method', 'GET',
  ':method', 'POST',
  ':path', '/',
  ':path', '/index.html',
  ':scheme', 'http',
  ':scheme', 'https',
  ':status', '200',
  ':status', '204',
  ':status', '206',
  ':status', '304',
  ':status', '400',
  ':status', '404',
  ':status', '500',
  'accept-charset', '',
  'accept-encoding', 'gzip, deflate',
  'accept-language', '',
  'accept-ranges', '',
  'accept', '',
  'access-control-allow-origin', '',
  'age', '',
  'allow', '',
  'authorization', '',
  'cache-control', '',
  'content-disposition', '',
  'content-encoding', '',
  'content-language', '',
  'content-length', '',
  'content-location', '',
  'content-range', '',
  'content-type', '',
  'cookie', '',
  'date', '',
  'etag', '',
  'expect', '',
  'expires', '',
  'from', '',
  'host', '',
  'if-match', '',
  'if-modified-since', '',
  'if-none-match', '',
  'if-range', '',
  'if-unmodified-since', '',
  'last-modified', '',
  'link', '',
  'location', '',
  'max-forwards', '',
  'proxy-authenticate', '',
  'proxy-authorization', '',
  'range', '',
  'referer', '',
  'refresh', '',
  'retry-after', '',
  'server', '',
  'set-cookie', '',
  'strict-transport-security', '',
  'transfer-encoding', '',
  'user-agent', '',
  'vary', '',
  'via', '',
  'www-authenticate', '',
];

/** STATIC_NAMES[i] / STATIC_VALUES[i] for i in 1..61 (slot 0 unused so indices read as in the RFC). */
export const STATIC_NAMES: readonly string[] = [''];
export const STATIC_VALUES: readonly string[] = [''];
/** Lowest static index carrying each name; entries sharing a name are contiguous, so exact matches scan forward from it. */
export const STATIC_NAME_INDEX: ReadonlyMap<string, number> = buildNameIndex();

function buildNameIndex(): Map<string, number> {
  const names = STATIC_NAMES as string[];
  const values = STATIC_VALUES as string[];
  const byName = new Map<string, number>();
  for (let i = 0; i < PAIRS.length; i += 2) {
    const index = names.length;
    names.push(PAIRS[i]);
    values.push(PAIRS[i + 1]);
    if (!byName.has(PAIRS[i])) byName.set(PAIRS[i], index);
  }
  return byName;
}
