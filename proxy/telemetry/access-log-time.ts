// Access log times, as `new Date(ms).toISOString()` writes them. A line has two
// and a busy proxy writes thousands a second, so the `YYYY-MM-DDTHH:MM:SS.`
// part is made once per second (as a string for the text line, as bytes for
// the JSON line) and only the milliseconds per time.

let second = -1;
let prefix = '';
let prefixBytes: Buffer = Buffer.alloc(0);

/** The milliseconds within their second, after making the prefix of that second current. */
function enterSecond(ms: number): number {
  const whole = Math.floor(ms);
  const s = Math.floor(whole / 1000);
  if (s !== second) {
    second = s;
    prefix = new Date(s * 1000).toISOString().slice(0, 20);
    prefixBytes = Buffer.from(prefix, 'latin1');
  }
  return whole - s * 1000;
}

/** `new Date(ms).toISOString()`. */
export function isoTime(ms: number): string {
  const milli = enterSecond(ms);
  return prefix + (milli < 10 ? '00' : milli < 100 ? '0' : '') + milli + 'Z';
}

/** `new Date(ms).toISOString()` written into `buf` at `pos` (24 bytes); returns where it ends. */
export function putIsoTime(buf: Buffer, pos: number, ms: number): number {
  const milli = enterSecond(ms);
  const bytes = prefixBytes;
  for (let i = 0; i < 20; i++) buf[pos + i] = bytes[i];
  pos += 20;
  buf[pos] = 0x30 + Math.floor(milli / 100);
  buf[pos + 1] = 0x30 + (Math.floor(milli / 10) % 10);
  buf[pos + 2] = 0x30 + (milli % 10);
  buf[pos + 3] = 0x5a;
  return pos + 4;
}
