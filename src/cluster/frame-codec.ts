import type { WireValue } from './transport.js';

/**
 * The bytes of a frame between nodes: UTF-8 JSON, in which a bigint is written as
 * `{"$bigint":"<decimal>"}` so amounts in minor units cross the wire exactly. A plain object whose
 * only key is `$bigint` or `$object` is written as `{"$object":{…}}`, so no data is ever mistaken
 * for a tag and every encodable value decodes to an equal one. Anything JSON cannot carry exactly
 * (undefined, functions, symbols, NaN, infinities, class instances such as Date or Map, holes in
 * arrays, cycles) is refused when encoding instead of silently changing shape; `-0` is written as 0.
 *
 * On the wire each frame is preceded by its length as a 4-byte unsigned big-endian integer
 * (`FrameReader`). Decoding takes bytes from other machines, so it never throws: it answers with
 * a reason, and the connection that sent them is closed.
 */

/** Nesting deeper than this is refused both ways, so untrusted input cannot exhaust the stack. */
export const frameNestingDepthMax = 64;

/** The length prefix before each frame's bytes. */
export const frameHeaderBytes = 4;

const bigintTag = '$bigint';
const objectTag = '$object';
const bigintPattern = /^-?(0|[1-9][0-9]*)$/;

/** A value that cannot be sent as a frame; a programming error of the sender, never of the peer. */
export class FrameEncodingError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${message} at ${path}`);
    this.name = 'FrameEncodingError';
  }
}

export type FrameDecoding =
  | { readonly ok: true; readonly value: WireValue }
  | { readonly ok: false; readonly reason: string };

/** The JSON bytes of a frame, without the length prefix. Throws FrameEncodingError for non-JSON data. */
export function encodeFrame(value: WireValue): Buffer {
  return Buffer.from(JSON.stringify(toWire(value, '$', 0, new Set())), 'utf8');
}

/** The frame in `bytes`, or why they are not one. Never throws. */
export function decodeFrame(bytes: Uint8Array): FrameDecoding {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return { ok: false, reason: 'frame is not JSON' };
  }
  try {
    return { ok: true, value: fromWire(parsed, 0) };
  } catch (error) {
    return { ok: false, reason: error instanceof FrameDecodingError ? error.message : 'frame is malformed' };
  }
}

/** The length prefix followed by the frame's JSON bytes. */
export function encodeLengthPrefixed(payload: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(frameHeaderBytes + payload.length);
  framed.writeUInt32BE(payload.length, 0);
  payload.copy(framed, frameHeaderBytes);
  return framed;
}

export type FrameReading =
  | { readonly ok: true; readonly payloads: readonly Buffer[] }
  | { readonly ok: false; readonly reason: string };

/**
 * Cuts a byte stream into length-prefixed payloads. A declared length above `frameBytesMax` is
 * refused before any of its body is buffered, so a peer cannot make this side hold more than one
 * frame's limit. After a refusal the stream is unusable (its boundaries are lost).
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private failed: string | undefined;

  constructor(private frameBytesMax: number) {}

  /** Changes the limit for frames not yet read (a handshake reads under a smaller one). */
  setFrameBytesMax(frameBytesMax: number): void {
    this.frameBytesMax = frameBytesMax;
  }

  push(chunk: Buffer): FrameReading {
    if (this.failed !== undefined) return { ok: false, reason: this.failed };
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    const payloads: Buffer[] = [];
    while (this.bufferedBytes >= frameHeaderBytes) {
      const head = this.contiguous(frameHeaderBytes);
      const length = head.readUInt32BE(0);
      if (length > this.frameBytesMax) {
        this.failed = `frame of ${length} bytes exceeds the limit of ${this.frameBytesMax}`;
        this.chunks = [];
        this.bufferedBytes = 0;
        return { ok: false, reason: this.failed };
      }
      if (this.bufferedBytes < frameHeaderBytes + length) break;
      const whole = this.contiguous(frameHeaderBytes + length);
      payloads.push(whole.subarray(frameHeaderBytes, frameHeaderBytes + length));
      this.consume(frameHeaderBytes + length);
    }
    return { ok: true, payloads };
  }

  /** The first `bytes` buffered bytes as one buffer, joining chunks only when a frame spans them. */
  private contiguous(bytes: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= bytes) return first;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private consume(bytes: number): void {
    let left = bytes;
    while (left > 0) {
      const first = this.chunks[0];
      if (first === undefined) break;
      if (first.length <= left) {
        this.chunks.shift();
        left -= first.length;
      } else {
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.bufferedBytes -= bytes;
  }
}

class FrameDecodingError extends Error {}

function toWire(value: unknown, path: string, depth: number, ancestors: Set<object>): unknown {
  if (depth > frameNestingDepthMax) throw new FrameEncodingError('nesting too deep', path);
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new FrameEncodingError(`${value} is not a JSON number`, path);
      return value;
    case 'bigint':
      return { [bigintTag]: value.toString() };
    case 'object':
      if (value === null) return null;
      return containerToWire(value, path, depth, ancestors);
    default:
      throw new FrameEncodingError(`a ${typeof value} is not JSON`, path);
  }
}

function containerToWire(value: object, path: string, depth: number, ancestors: Set<object>): unknown {
  if (ancestors.has(value)) throw new FrameEncodingError('a cycle is not JSON', path);
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      const items: unknown[] = [];
      for (let index = 0; index < value.length; index++) {
        if (!(index in value)) throw new FrameEncodingError('a hole in an array is not JSON', path);
        items.push(toWire(value[index], `${path}[${index}]`, depth + 1, ancestors));
      }
      return items;
    }
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) {
      throw new FrameEncodingError('only plain objects are JSON', path);
    }
    const record: Record<string, unknown> = {};
    const keys = Object.keys(value);
    for (const key of keys) {
      setOwn(record, key, toWire(Reflect.get(value, key), `${path}.${key}`, depth + 1, ancestors));
    }
    return keys.length === 1 && (keys[0] === bigintTag || keys[0] === objectTag)
      ? { [objectTag]: record }
      : record;
  } finally {
    ancestors.delete(value);
  }
}

function fromWire(value: unknown, depth: number): unknown {
  if (depth > frameNestingDepthMax) throw new FrameDecodingError('frame nests too deep');
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((item) => fromWire(item, depth + 1));
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === bigintTag) {
    const digits: unknown = Reflect.get(value, bigintTag);
    if (typeof digits !== 'string' || !bigintPattern.test(digits)) {
      throw new FrameDecodingError('frame has a malformed bigint');
    }
    return BigInt(digits);
  }
  if (keys.length === 1 && keys[0] === objectTag) {
    const inner: unknown = Reflect.get(value, objectTag);
    if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) {
      throw new FrameDecodingError('frame has a malformed escaped object');
    }
    return recordFromWire(inner, depth + 1);
  }
  return recordFromWire(value, depth);
}

function recordFromWire(value: object, depth: number): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (const key of Object.keys(value)) setOwn(record, key, fromWire(Reflect.get(value, key), depth + 1));
  return record;
}

/** Sets an own property even for the key `__proto__`, which plain assignment would treat as the prototype. */
function setOwn(record: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    record[key] = value;
  }
}
