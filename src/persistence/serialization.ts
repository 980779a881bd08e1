import type { SerializedEvent } from '../store/journal.js';

/**
 * Versioned JSON. Every stored value records the schema version it was written with; reading an
 * older version runs it through the upcasters (v1 → v2 → … → current) before decoding, so old
 * journals stay readable after a schema changes. Never language-native serialization.
 */
export interface VersionedCodec<T> {
  /** The version written today. */
  readonly version: number;
  /** Turns a value into JSON-compatible data (bigint → string, Map → array, …). */
  encode(value: T): unknown;
  /** Parses JSON data of the current version; throws on anything malformed. */
  decode(json: unknown): T;
  /** `upcasters[v]` turns data of version v into data of version v + 1. */
  readonly upcasters?: Readonly<Record<number, (json: unknown) => unknown>>;
  /** Optional fast path: the JSON text of `encode(value)`, without building the data first. */
  encodeText?(value: T): string;
}

export interface EventSchema<E extends { readonly type: string }> extends VersionedCodec<E> {
  readonly type: E['type'];
}

/** Where a stored value came from, for error messages. */
export interface StoredLocation {
  readonly persistenceId: string;
  readonly seqNr: number;
}

export class SerializationError extends Error {
  override readonly name = 'SerializationError';
  constructor(
    message: string,
    readonly location?: StoredLocation,
    options?: ErrorOptions,
  ) {
    super(
      location ? `${message} (persistence id ${location.persistenceId}, seqNr ${location.seqNr})` : message,
      options,
    );
  }
}

/** Brings JSON data of `fromVersion` up to the codec's current version, or throws. */
export function upcast<T>(
  codec: VersionedCodec<T>,
  what: string,
  json: unknown,
  fromVersion: number,
  location?: StoredLocation,
): unknown {
  if (!Number.isInteger(fromVersion) || fromVersion < 1 || fromVersion > codec.version) {
    throw new SerializationError(
      `${what} has unsupported schema version ${fromVersion} (this code reads versions 1 to ${codec.version})`,
      location,
    );
  }
  let data = json;
  for (let version = fromVersion; version < codec.version; version++) {
    const upcaster = codec.upcasters?.[version];
    if (upcaster === undefined) {
      throw new SerializationError(
        `${what} version ${version} has no upcaster to version ${version + 1}`,
        location,
      );
    }
    data = upcaster(data);
  }
  return data;
}

/** Decodes stored JSON text of some version into the current type, naming the location on failure. */
export function decodeVersioned<T>(
  codec: VersionedCodec<T>,
  what: string,
  payload: string,
  version: number,
  location?: StoredLocation,
): T {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch (error) {
    throw new SerializationError(`${what} payload is not valid JSON`, location, { cause: error });
  }
  const current = upcast(codec, what, json, version, location);
  try {
    return codec.decode(current);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SerializationError(`${what} does not match its schema: ${reason}`, location, { cause: error });
  }
}

/**
 * The events one entity type may write. Unknown types and versions are errors, never skipped:
 * skipping an event would silently rebuild the wrong state.
 */
export class EventRegistry<E extends { readonly type: string }> {
  private readonly schemas = new Map<string, EventSchema<E>>();

  constructor(schemas: ReadonlyArray<EventSchema<E>>) {
    for (const schema of schemas) {
      if (this.schemas.has(schema.type)) throw new Error(`event type ${schema.type} is registered twice`);
      this.schemas.set(schema.type, schema);
    }
  }

  serialize(event: E): SerializedEvent {
    const schema = this.schemas.get(event.type);
    if (schema === undefined) throw new SerializationError(`event type ${event.type} is not registered`);
    const payload = schema.encodeText ? schema.encodeText(event) : JSON.stringify(schema.encode(event));
    return { type: event.type, version: schema.version, payload };
  }

  /** Whether a stored event of this type and version is in the schema version written today. */
  isCurrent(type: string, version: number): boolean {
    return this.schemas.get(type)?.version === version;
  }

  deserialize(stored: SerializedEvent, location?: StoredLocation): E {
    const schema = this.schemas.get(stored.type);
    if (schema === undefined) {
      throw new SerializationError(`unknown event type ${stored.type}`, location);
    }
    const event = decodeVersioned(schema, `event ${stored.type}`, stored.payload, stored.version, location);
    if (event.type !== stored.type) {
      throw new SerializationError(
        `event decoded as ${event.type} but was stored as ${stored.type}`,
        location,
      );
    }
    return event;
  }
}

/** A codec for plain JSON data whose encoded form is the value itself, checked by `parse`. */
export function jsonCodec<T>(
  version: number,
  parse: (json: unknown) => T,
  upcasters?: Readonly<Record<number, (json: unknown) => unknown>>,
): VersionedCodec<T> {
  return upcasters === undefined
    ? { version, encode: (value) => value, decode: parse }
    : { version, encode: (value) => value, decode: parse, upcasters };
}

/**
 * JSON-compatible data from a value: bigints become decimal strings (money must not pass through
 * floating point); everything else must already be plain data.
 */
export function toJsonData(value: unknown): unknown {
  return JSON.parse(toJsonText(value));
}

export function toJsonText(value: unknown): string {
  // Not a `JSON.stringify` replacer: a replacer is called for every key and keeps V8 off its fast
  // path (encoding events took ~4 % of the gateway's main thread that way). Copying just the objects
  // that hold a bigint, then stringifying plainly, writes the same text in about half the time.
  return JSON.stringify(bigintsAsStrings(value));
}

/** `value` with every bigint inside it a decimal string; objects without one are not copied. */
function bigintsAsStrings(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let index = 0; index < value.length; index++) {
      const item: unknown = value[index];
      const converted = bigintsAsStrings(item);
      if (converted !== item) {
        copy ??= value.slice();
        copy[index] = converted;
      }
    }
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  const record = value as Record<string, unknown>;
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue;
    const field = record[key];
    const converted = bigintsAsStrings(field);
    if (converted !== field) {
      copy ??= { ...record };
      copy[key] = converted;
    }
  }
  return copy ?? value;
}

/**
 * An event schema whose encoded form is the event itself as JSON data (bigints as strings) and
 * whose decoding is a parser — typically a zod schema — that turns those strings back into bigints.
 */
export function eventSchema<E extends { readonly type: string }>(
  type: E['type'],
  parser: { parse(json: unknown): E },
  options: { version?: number; upcasters?: Readonly<Record<number, (json: unknown) => unknown>> } = {},
): EventSchema<E> {
  const base = {
    type,
    version: options.version ?? 1,
    encode: toJsonData,
    encodeText: toJsonText,
    decode: (json: unknown) => parser.parse(json),
  };
  return options.upcasters === undefined ? base : { ...base, upcasters: options.upcasters };
}
