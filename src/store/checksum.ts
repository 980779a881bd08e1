import { crc32 } from 'node:zlib';

/**
 * The checksum stored with every row. It covers the row's identity as well as its content, so a
 * payload copied onto another row is caught too. CRC-32 finds torn and bit-flipped rows; it is not
 * a defence against deliberate tampering.
 */
export function rowChecksum(
  persistenceId: string,
  seqNr: number,
  type: string,
  version: number,
  payload: string,
): number {
  return crc32(`${persistenceId}\u0000${seqNr}\u0000${type}\u0000${version}\u0000${payload}`);
}
