import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accountEvents, accountSnapshotCodec } from '../testing/fixtures/account.js';
import { decodeVersioned, SerializationError, toJsonText } from './serialization.js';

const at = { persistenceId: 'account-a1', seqNr: 7 };

describe('versioned JSON serialization', () => {
  it('round-trips an event with its type and current version, bigint as a string', () => {
    const stored = accountEvents.serialize({ type: 'Deposited', amount: 12_345_678_901_234_567_890n });
    expect(stored).toEqual({ type: 'Deposited', version: 2, payload: '{"amount":"12345678901234567890"}' });
    expect(accountEvents.deserialize(stored, at)).toEqual({
      type: 'Deposited',
      amount: 12_345_678_901_234_567_890n,
    });
  });

  it('reads an old version through its upcaster', () => {
    const v1 = { type: 'Deposited', version: 1, payload: '{"value":250}' };
    expect(accountEvents.deserialize(v1, at)).toEqual({ type: 'Deposited', amount: 250n });
  });

  it('refuses an unknown event type, naming where it was stored', () => {
    expect(() => accountEvents.deserialize({ type: 'Teleported', version: 1, payload: '{}' }, at)).toThrow(
      'unknown event type Teleported (persistence id account-a1, seqNr 7)',
    );
  });

  it('refuses a version newer than the code knows, and one below 1', () => {
    expect(() => accountEvents.deserialize({ type: 'Deposited', version: 3, payload: '{}' }, at)).toThrow(
      /unsupported schema version 3 .*persistence id account-a1, seqNr 7/,
    );
    expect(() => accountEvents.deserialize({ type: 'Deposited', version: 0, payload: '{}' }, at)).toThrow(
      SerializationError,
    );
  });

  it('refuses a payload that does not match the schema, or is not JSON', () => {
    expect(() =>
      accountEvents.deserialize({ type: 'Withdrawn', version: 1, payload: '{"amount":1.5}' }, at),
    ).toThrow(/does not match its schema/);
    expect(() =>
      accountEvents.deserialize({ type: 'Withdrawn', version: 1, payload: '{"amount":' }, at),
    ).toThrow(/not valid JSON/);
    expect(() =>
      accountEvents.deserialize(
        { type: 'Withdrawn', version: 1, payload: '{"amount":"1","extra":true}' },
        at,
      ),
    ).toThrow(SerializationError);
  });

  it('refuses to serialize an unregistered event', () => {
    expect(() => accountEvents.serialize({ type: 'Other' } as never)).toThrow(
      'event type Other is not registered',
    );
  });

  it('reports a missing upcaster instead of guessing', () => {
    const codec = { ...accountSnapshotCodec, version: 3 };
    expect(() => decodeVersioned(codec, 'snapshot', '{}', 1, at)).toThrow(
      'snapshot version 1 has no upcaster to version 2 (persistence id account-a1, seqNr 7)',
    );
  });

  it('writes bigints as decimal strings anywhere in plain data, and the same text a replacer would', () => {
    const replaced = (value: unknown): string =>
      JSON.stringify(value, (_key, field: unknown) => (typeof field === 'bigint' ? field.toString() : field));
    const data = { a: 1n, list: [2n, { b: -3n, c: 'x' }, null], nested: { d: undefined, e: true } };
    expect(toJsonText(data)).toBe('{"a":"1","list":["2",{"b":"-3","c":"x"},null],"nested":{"e":true}}');
    expect(data.a).toBe(1n);
    const plain = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.bigInt(),
        fc.integer(),
        fc.string(),
        fc.boolean(),
        fc.constant(null),
        fc.constant(undefined),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie('value'), { maxKeys: 4 }),
      ),
    })).value;
    fc.assert(fc.property(plain, (value) => toJsonText(value) === replaced(value)));
  });
});
