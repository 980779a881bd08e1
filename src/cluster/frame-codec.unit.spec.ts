import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeFrame,
  encodeLengthPrefixed,
  FrameEncodingError,
  FrameReader,
  frameNestingDepthMax,
} from './frame-codec.js';

/** Any value the codec promises to carry: JSON data with bigints, including keys that look like tags. */
const wireValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.string(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((number) => (Object.is(number, -0) ? 0 : number)),
    fc.bigInt(),
    fc.array(tie('value')),
    fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('$bigint', '$object', '__proto__')), tie('value')),
  ),
})).value;

describe('frame codec', () => {
  it('decodes every encoded value to an equal one, bigints as bigints', () => {
    fc.assert(
      fc.property(wireValue, (value) => {
        const decoded = decodeFrame(encodeFrame(value));
        expect(decoded).toEqual({ ok: true, value });
      }),
    );
  });

  it('keeps an amount beyond 2^53 exact', () => {
    const frame = { amount: 9_007_199_254_740_993n, nested: [{ $bigint: 'data, not a tag' }] };
    expect(decodeFrame(encodeFrame(frame))).toEqual({ ok: true, value: frame });
  });

  it('refuses what JSON cannot carry exactly', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    let deep: unknown = 1;
    for (let level = 0; level <= frameNestingDepthMax + 1; level++) deep = [deep];
    for (const value of [
      undefined,
      { missing: undefined },
      Number.NaN,
      Number.POSITIVE_INFINITY,
      () => 1,
      Symbol('s'),
      new Date(0),
      new Map(),
      new Array<number>(3),
      cyclic,
      deep,
    ]) {
      expect(() => encodeFrame(value)).toThrow(FrameEncodingError);
    }
  });

  it('answers garbage bytes with a reason, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const decoded = decodeFrame(bytes);
        if (!decoded.ok) expect(decoded.reason).toMatch(/frame/);
      }),
    );
    for (const text of [
      '{"$bigint":"1.5"}',
      '{"$bigint":7}',
      '{"$object":[1]}',
      `${'['.repeat(500)}${']'.repeat(500)}`,
    ]) {
      expect(decodeFrame(Buffer.from(text))).toMatchObject({ ok: false });
    }
  });

  it('cuts a stream into frames however it is split, and never throws on garbage', () => {
    fc.assert(
      fc.property(
        fc.array(wireValue, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (values, cuts) => {
          const stream = Buffer.concat(values.map((value) => encodeLengthPrefixed(encodeFrame(value))));
          const positions = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
          const reader = new FrameReader(1 << 20);
          const decoded: unknown[] = [];
          let start = 0;
          for (const end of [...positions, stream.length]) {
            const reading = reader.push(stream.subarray(start, end));
            if (!reading.ok) throw new Error(reading.reason);
            for (const payload of reading.payloads) decoded.push(decodeFrame(payload));
            start = end;
          }
          expect(decoded).toEqual(values.map((value) => ({ ok: true, value })));
        },
      ),
    );
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const reader = new FrameReader(256);
        for (const chunk of chunks) {
          const reading = reader.push(Buffer.from(chunk));
          if (reading.ok) for (const payload of reading.payloads) decodeFrame(payload);
        }
      }),
    );
  });

  it('refuses a declared length over the limit before buffering its body', () => {
    const reader = new FrameReader(16);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(17, 0);
    expect(reader.push(header)).toEqual({ ok: false, reason: 'frame of 17 bytes exceeds the limit of 16' });
    expect(reader.push(encodeLengthPrefixed(encodeFrame(1)))).toMatchObject({ ok: false });
  });
});
