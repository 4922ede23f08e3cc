// Encryption of secret state values (the CA's private key) before they go to
// Consul KV. Consul stores KV in plain text in its raft log and snapshots, so
// ACLs alone leave the key readable to whoever holds a snapshot or a
// management token. With a key file, the control plane seals each secret with
// AES-256-GCM under a key derived from that file (HKDF-SHA256); the KV path is
// the associated data, so a sealed value copied to another key does not open.
// Every replica needs the same file. Without one, secrets rely on ACLs alone
// (see the minimal policy in README.md).
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { JibeError } from '../../core/errors/errors.ts';

export interface SealedValue {
  alg: 'A256GCM';
  iv: string;
  tag: string;
  data: string;
}

const INFO = 'jibe consul state-store secret v1';
/** Fewer bytes than this cannot hold enough entropy for a 256-bit key. */
const MIN_KEY_FILE_BYTES = 32;

export class SecretBox {
  private readonly key: Buffer;

  constructor(material: Buffer) {
    if (material.length < MIN_KEY_FILE_BYTES) {
      throw new JibeError('JIBE_ERR_BAD_REQUEST', `the Consul secret key file holds ${material.length} bytes; at least ${MIN_KEY_FILE_BYTES} random bytes are needed`, {
        field: 'consul.secretKeyFile',
        hint: 'create one with: head -c 32 /dev/urandom > jibe-consul.key && chmod 600 jibe-consul.key',
      });
    }
    this.key = Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), INFO, 32));
  }

  static async fromFile(path: string): Promise<SecretBox> {
    let material: Buffer;
    try {
      material = await readFile(path);
    } catch (err) {
      throw new JibeError('JIBE_ERR_FILE_READ', `cannot read the Consul secret key file ${path}: ${(err as Error).message}`, { file: path, field: 'consul.secretKeyFile' });
    }
    return new SecretBox(material);
  }

  seal(plaintext: string, associated: string): SealedValue {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(associated, 'utf8'));
    const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { alg: 'A256GCM', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
  }

  open(sealed: SealedValue, associated: string): string {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
      decipher.setAAD(Buffer.from(associated, 'utf8'));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new JibeError('JIBE_ERR_CONSUL', `the secret at Consul key ${associated} does not open with this control plane's key file`, {
        hint: 'every control-plane replica must use the same --consul-secret-key-file',
      });
    }
  }
}
