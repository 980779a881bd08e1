/**
 * A minimal keep-alive HTTP/1.1 client over `node:net`, for the load generator.
 *
 * Why not undici: the load generator shares a 2-core machine with the gateway and the bank, and
 * undici's Pool costs about three times the CPU per request of a raw socket write plus a small
 * parser. This client does only what the benchmark needs:
 *
 * - a fixed number of connections to one origin, `setNoDelay(true)`, opened on first use and
 *   re-opened after a close, an error or a timeout;
 * - one request in flight per connection (no pipelining) and a bounded FIFO queue of requests
 *   waiting for a free connection;
 * - each request is one string or buffer (head + `content-length` + body) in one `socket.write`;
 * - an incremental parser for the responses a Node `http` server (Fastify) sends: status line,
 *   headers, body by `content-length`, `transfer-encoding: chunked` or (without either) until the
 *   server closes; `connection: close` is honoured. Lines end in CRLF (as Node sends them).
 *
 * Every failure is an `HttpClientError` whose `kind` is a stable name the benchmark counts by:
 * `timeout:headers`, `timeout:body`, `network:<errno code>`, `network:socket_closed`,
 * `protocol:<what>`, `queue_full`, `aborted`.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

/** Status line and headers of a response, at most (a larger head is `protocol:headers_too_large`). */
export const maxHeaderBytes = 64 * 1024;
/** A response body, at most (a larger one is `protocol:body_too_large`). */
export const maxBodyBytes = 1024 * 1024;
/** One chunk-size line of a chunked body (hex size and extensions), at most. */
const maxChunkLineBytes = 1024;

export class HttpClientError extends Error {
  constructor(
    readonly kind: string,
    message: string = kind,
  ) {
    super(message);
    this.name = 'HttpClientError';
  }
}

export interface HttpResponse {
  readonly status: number;
  /** The body decoded as UTF-8. */
  readonly body: string;
}

export interface HttpClientOptions {
  /** `http://host:port`: every request goes to this origin. */
  readonly baseUrl: string;
  readonly connections: number;
  /** Requests waiting for a free connection, at most; one more fails with `queue_full`. */
  readonly queueMax: number;
  /**
   * From the request's write until the last byte of its answer; then it fails with
   * `timeout:headers` (head not complete) or `timeout:body`, and its socket is replaced.
   * Time in the queue does not count (as with undici's headers timeout).
   */
  readonly requestTimeoutMs: number;
}

interface Pending {
  readonly payload: string | Buffer;
  readonly resolve: (response: HttpResponse) => void;
  readonly reject: (error: HttpClientError) => void;
}

const crlf = Buffer.from('\r\n');
const headEnd = Buffer.from('\r\n\r\n');
const tokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const pathPattern = /^\/[\x21-\x7e]*$/;
const headerValuePattern = /^[\t\x20-\x7e]*$/;
const statusLinePattern = /^HTTP\/1\.([01]) (\d{3})(?: |$)/;
const hexPattern = /^[0-9A-Fa-f]{1,8}$/;

export class RawHttpClient {
  /** `host:port`, as the `host` header says it. */
  readonly host: string;
  private readonly hostname: string;
  private readonly port: number;
  /** Free connections, most recently used last: reusing a warm socket first keeps few open. */
  private readonly idle: Connection[] = [];
  private readonly all: Connection[] = [];
  /** FIFO of requests waiting for a connection; `queueHead` is its first live entry. */
  private queue: (Pending | undefined)[] = [];
  private queueHead = 0;
  private destroyed = false;
  /** Sockets not closed yet, including ones given up on and still closing. */
  private readonly sockets = new Set<net.Socket>();
  /** Sockets opened so far (a test sees keep-alive reuse and reconnects in it). */
  connectsTotal = 0;

  constructor(private readonly options: HttpClientOptions) {
    const url = new URL(options.baseUrl);
    if (url.protocol !== 'http:' || url.port === '') throw new Error(`need http://host:port, got ${url}`);
    if (!Number.isSafeInteger(options.connections) || options.connections < 1)
      throw new Error(`connections must be a whole number above 0, got ${options.connections}`);
    this.host = url.host;
    this.hostname = url.hostname;
    this.port = Number(url.port);
    for (let index = 0; index < options.connections; index++) {
      const connection = new Connection(this, options.requestTimeoutMs);
      this.all.push(connection);
      this.idle.push(connection);
    }
  }

  /**
   * A request head to pass to `request` (build it once, reuse it): request line, `host` and the
   * given headers, each line ending in CRLF, without `content-length` or the blank line.
   */
  head(method: string, path: string, headers: Readonly<Record<string, string>> = {}): string {
    if (!tokenPattern.test(method) || !pathPattern.test(path))
      throw new Error(`bad request line: ${method} ${path}`);
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      if (!tokenPattern.test(name) || !headerValuePattern.test(value)) throw new Error(`bad header: ${name}`);
      head += `${name}: ${value}\r\n`;
    }
    return head;
  }

  /**
   * Sends `head` (as from `head()`, maybe with more header lines appended) with `body`, and
   * resolves with the answer; rejects with an `HttpClientError`.
   */
  request(head: string | Buffer, body: string | Buffer): Promise<HttpResponse> {
    // Both strings (the benchmark's case): one string, encoded once by the socket's write.
    const payload =
      typeof head === 'string' && typeof body === 'string'
        ? `${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
        : Buffer.concat([
            typeof head === 'string' ? Buffer.from(head) : head,
            Buffer.from(`content-length: ${Buffer.byteLength(body)}\r\n\r\n`),
            typeof body === 'string' ? Buffer.from(body) : body,
          ]);
    return new Promise((resolve, reject) => {
      if (this.destroyed) {
        reject(new HttpClientError('aborted', 'the client is destroyed'));
        return;
      }
      const pending: Pending = { payload, resolve, reject };
      const connection = this.idle.pop();
      if (connection !== undefined) connection.start(pending);
      else if (this.queue.length - this.queueHead >= this.options.queueMax)
        reject(new HttpClientError('queue_full', `${this.options.queueMax} requests already wait`));
      else this.queue.push(pending);
    });
  }

  /** Closes every socket; requests queued or in flight fail with `aborted`. Resolves once closed. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    const queued = this.queue.slice(this.queueHead);
    this.queue = [];
    this.queueHead = 0;
    for (const pending of queued) pending?.reject(new HttpClientError('aborted', 'the client was destroyed'));
    const closed = [...this.sockets].map(
      (socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())),
    );
    for (const connection of this.all) connection.destroy();
    await Promise.all(closed);
  }

  /** Sockets not closed yet. */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** Called by a connection that finished its request: it takes the next queued one or idles. */
  release(connection: Connection): void {
    if (this.destroyed) return;
    const next = this.queue[this.queueHead];
    if (next === undefined) {
      this.idle.push(connection);
      return;
    }
    this.queue[this.queueHead] = undefined; // Let it be collected.
    this.queueHead++;
    // Drop the consumed front now and then instead of shifting on every request.
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead >= 1_024 && this.queueHead * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    connection.start(next);
  }

  /** A new socket to the origin, for a connection (which installs its own listeners). */
  connect(): net.Socket {
    this.connectsTotal++;
    const socket = net.connect({ host: this.hostname, port: this.port });
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }
}

/** One keep-alive socket (re-opened as needed) with at most one request in flight. */
class Connection {
  private socket: net.Socket | undefined;
  /** The errno code of the socket's last 'error', reported when it closes. */
  private socketError: string | undefined;
  private current: Pending | undefined;
  private readonly parser = new ResponseParser();
  /**
   * One timer per connection, re-armed only when it fires early, instead of a setTimeout and
   * clearTimeout per request: with a fixed timeout, deadlines only move later, so a timer armed
   * for an earlier request fires at or before the current one's deadline.
   */
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;

  constructor(
    private readonly client: RawHttpClient,
    private readonly timeoutMs: number,
  ) {}

  start(pending: Pending): void {
    this.current = pending;
    this.parser.reset();
    this.deadline = performance.now() + this.timeoutMs;
    // Unref'd: an idle client must not hold the process up; a request's socket does that.
    if (this.timer === undefined) this.timer = setTimeout(this.onTimer, this.timeoutMs).unref();
    const socket = this.socket ?? this.open();
    // Written before the connect completes, it goes out as soon as it does.
    socket.write(pending.payload);
  }

  destroy(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.fail(new HttpClientError('aborted', 'the client was destroyed'));
    this.dropSocket();
  }

  private open(): net.Socket {
    const socket = this.client.connect();
    this.socket = socket;
    this.socketError = undefined;
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.onData(chunk);
    });
    socket.on('error', (error: Error) => {
      if (this.socket !== socket) return;
      const code: unknown = Reflect.get(error, 'code');
      this.socketError = typeof code === 'string' ? code : error.name;
    });
    // The server's FIN ('end') is acted on at once, not at 'close': a request started in between
    // would be written to a socket that is going away.
    const onEnd = (): void => {
      if (this.socket === socket) this.onClose();
    };
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    return socket;
  }

  private onData(chunk: Buffer): void {
    const pending = this.current;
    if (pending === undefined) {
      // Bytes nobody asked for: the framing of this socket cannot be trusted any more.
      this.dropSocket();
      return;
    }
    let response: HttpResponse | undefined;
    try {
      response = this.parser.feed(chunk);
    } catch (error) {
      this.abandon(
        error instanceof HttpClientError ? error : new HttpClientError('protocol:parse', String(error)),
      );
      return;
    }
    if (response === undefined) return;
    if (this.parser.extraBytes > 0) {
      // Without pipelining nothing may follow a response: the server and we disagree on framing.
      this.abandon(new HttpClientError('protocol:unexpected_bytes', 'bytes after the response'));
      return;
    }
    if (!this.parser.keepAlive) this.dropSocket();
    this.finish(response);
  }

  private onClose(): void {
    const error = this.socketError;
    this.dropSocket();
    this.socketError = undefined;
    if (this.current === undefined) return; // An idle keep-alive socket closed: reopen on next use.
    const response = error === undefined ? this.parser.endOfStream() : undefined;
    if (response !== undefined) this.finish(response);
    else this.fail(new HttpClientError(`network:${error ?? 'socket_closed'}`, 'the connection closed'));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.current === undefined) return;
    const left = this.deadline - performance.now();
    if (left > 0) {
      this.timer = setTimeout(this.onTimer, left).unref();
      return;
    }
    const kind = this.parser.headComplete ? 'timeout:body' : 'timeout:headers';
    this.abandon(new HttpClientError(kind, `no answer within ${this.timeoutMs} ms`));
  };

  /** Fails the request in flight and throws its socket away (the next request opens another). */
  private abandon(error: HttpClientError): void {
    this.dropSocket();
    this.fail(error);
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }

  private finish(response: HttpResponse): void {
    const pending = this.current;
    this.current = undefined;
    if (pending === undefined) return;
    pending.resolve(response);
    this.client.release(this);
  }

  private fail(error: HttpClientError): void {
    const pending = this.current;
    this.current = undefined;
    if (pending === undefined) return;
    pending.reject(error);
    this.client.release(this);
  }
}

type ParserState =
  | 'head'
  | 'fixed'
  | 'chunkSize'
  | 'chunkData'
  | 'chunkDataEnd'
  | 'trailers'
  | 'untilClose'
  | 'done';

/**
 * Parses one response from the chunks `feed` is given. The common case, a whole response in one
 * chunk, is parsed in place; only a head or line split across chunks is copied into `carry`.
 */
export class ResponseParser {
  private state: ParserState = 'head';
  private status = 0;
  /** False after `connection: close` (or an HTTP/1.0 answer without keep-alive). */
  keepAlive = true;
  /** Bytes of the last chunk fed that follow the end of the response. */
  extraBytes = 0;
  /** Body bytes still to come: of the whole body (`fixed`) or of the current chunk. */
  private remaining = 0;
  private bodyParts: Buffer[] = [];
  private bodyLength = 0;
  private trailerBytes = 0;
  /** Bytes of a head or line that began in an earlier chunk. */
  private carry: Buffer = Buffer.alloc(0);
  private carryLength = 0;

  get headComplete(): boolean {
    return this.state !== 'head';
  }

  reset(): void {
    this.state = 'head';
    this.status = 0;
    this.keepAlive = true;
    this.extraBytes = 0;
    this.remaining = 0;
    this.bodyParts = [];
    this.bodyLength = 0;
    this.trailerBytes = 0;
    this.carryLength = 0;
  }

  /** The response once `chunk` completes it, else undefined; throws an `HttpClientError`. */
  feed(chunk: Buffer): HttpResponse | undefined {
    let at = 0;
    // Every pass consumes bytes or changes state towards `done`; a chunk has finitely many bytes.
    while (this.state !== 'done') {
      if (at >= chunk.length) return undefined;
      switch (this.state) {
        case 'head': {
          const line = this.until(chunk, at, headEnd, maxHeaderBytes, 'protocol:headers_too_large');
          if (line === undefined) return undefined;
          at = line.next;
          this.onHead(line.text);
          break;
        }
        case 'fixed': {
          // A whole body in this chunk (the usual case) is decoded in place, without a copy.
          if (this.bodyLength === 0 && chunk.length - at >= this.remaining) {
            const end = at + this.remaining;
            this.extraBytes = chunk.length - end;
            this.state = 'done';
            return { status: this.status, body: chunk.toString('utf8', at, end) };
          }
          at = this.takeBody(chunk, at);
          if (this.remaining === 0) this.state = 'done';
          break;
        }
        case 'untilClose':
          this.addBody(chunk.subarray(at));
          return undefined;
        case 'chunkSize': {
          const line = this.until(chunk, at, crlf, maxChunkLineBytes, 'protocol:bad_chunk');
          if (line === undefined) return undefined;
          at = line.next;
          const semicolon = line.text.indexOf(';');
          const hex = (semicolon === -1 ? line.text : line.text.slice(0, semicolon)).trim();
          if (!hexPattern.test(hex)) throw new HttpClientError('protocol:bad_chunk', `chunk size ${hex}`);
          const size = Number.parseInt(hex, 16);
          if (this.bodyLength + size > maxBodyBytes) throw bodyTooLarge();
          this.remaining = size;
          this.state = size === 0 ? 'trailers' : 'chunkData';
          break;
        }
        case 'chunkData':
          at = this.takeBody(chunk, at);
          if (this.remaining === 0) this.state = 'chunkDataEnd';
          break;
        case 'chunkDataEnd': {
          const line = this.until(chunk, at, crlf, 0, 'protocol:bad_chunk');
          if (line === undefined) return undefined;
          at = line.next;
          if (line.text !== '') throw new HttpClientError('protocol:bad_chunk', 'no CRLF after a chunk');
          this.state = 'chunkSize';
          break;
        }
        case 'trailers': {
          // Trailer fields, one per line, up to an empty line; ignored but bounded.
          const line = this.until(chunk, at, crlf, maxHeaderBytes, 'protocol:headers_too_large');
          if (line === undefined) return undefined;
          at = line.next;
          this.trailerBytes += line.text.length + 2;
          if (this.trailerBytes > maxHeaderBytes) throw new HttpClientError('protocol:headers_too_large');
          if (line.text === '') this.state = 'done';
          break;
        }
      }
    }
    this.extraBytes = chunk.length - at;
    return this.response();
  }

  /** The socket ended cleanly: the response if its body runs until the close, else undefined. */
  endOfStream(): HttpResponse | undefined {
    if (this.state !== 'untilClose') return undefined;
    this.state = 'done';
    return this.response();
  }

  private response(): HttpResponse {
    const body =
      this.bodyParts.length === 1
        ? (this.bodyParts[0] ?? Buffer.alloc(0))
        : Buffer.concat(this.bodyParts, this.bodyLength);
    return { status: this.status, body: body.toString('utf8') };
  }

  private onHead(text: string): void {
    const lines = text.split('\r\n');
    const match = statusLinePattern.exec(lines[0] ?? '');
    if (match === null) throw new HttpClientError('protocol:bad_status_line', lines[0]);
    const status = Number(match[2]);
    if (status >= 100 && status < 200 && status !== 101) return; // Interim (100, 103): the real one follows.
    let contentLength: number | undefined;
    let chunked = false;
    let keepAlive = match[1] === '1';
    for (let index = 1; index < lines.length; index++) {
      const line = lines[index] ?? '';
      const colon = line.indexOf(':');
      if (colon <= 0 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9)
        throw new HttpClientError('protocol:bad_header', line.slice(0, 100));
      // Only three headers matter; compare lower-cased names only when the length fits.
      if (colon !== 14 && colon !== 17 && colon !== 10) continue;
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d{1,16}$/.test(value) || (contentLength !== undefined && contentLength !== Number(value)))
          throw new HttpClientError('protocol:bad_content_length', value);
        contentLength = Number(value);
      } else if (name === 'transfer-encoding') {
        const codings = value.toLowerCase().split(',');
        if (codings[codings.length - 1]?.trim() !== 'chunked')
          throw new HttpClientError('protocol:unsupported_transfer_encoding', value);
        chunked = true;
      } else if (name === 'connection') {
        for (const token of value.toLowerCase().split(',')) {
          if (token.trim() === 'close') keepAlive = false;
          else if (token.trim() === 'keep-alive') keepAlive = true;
        }
      }
    }
    this.status = status;
    this.keepAlive = keepAlive;
    // We never send HEAD; 204 and 304 have no body whatever their headers say.
    if (status === 204 || status === 304) {
      this.state = 'done';
    } else if (chunked) {
      this.state = 'chunkSize';
    } else if (contentLength !== undefined) {
      if (contentLength > maxBodyBytes) throw bodyTooLarge();
      this.remaining = contentLength;
      this.state = contentLength === 0 ? 'done' : 'fixed';
    } else {
      // Neither: the body is whatever arrives until the server closes (RFC 9112 §6.3).
      this.keepAlive = false;
      this.state = 'untilClose';
    }
  }

  /** Takes up to `remaining` body bytes from `chunk` at `at`; returns the new position. */
  private takeBody(chunk: Buffer, at: number): number {
    const end = Math.min(chunk.length, at + this.remaining);
    this.addBody(chunk.subarray(at, end));
    this.remaining -= end - at;
    return end;
  }

  private addBody(part: Buffer): void {
    if (part.length === 0) return;
    this.bodyLength += part.length;
    if (this.bodyLength > maxBodyBytes) throw bodyTooLarge();
    this.bodyParts.push(part);
  }

  /**
   * The text (latin1) before `terminator`, with the position in `chunk` after it; or undefined,
   * having kept `chunk[at..]` in `carry` for the next chunk. A terminator more than `limit` bytes
   * in throws `tooLong`.
   */
  private until(
    chunk: Buffer,
    at: number,
    terminator: Buffer,
    limit: number,
    tooLong: string,
  ): { text: string; next: number } | undefined {
    if (this.carryLength === 0) {
      const found = chunk.indexOf(terminator, at);
      if (found !== -1) {
        if (found - at > limit) throw new HttpClientError(tooLong);
        return { text: chunk.toString('latin1', at, found), next: found + terminator.length };
      }
    }
    // Carry at most what a line within the limit could need (the rest of the chunk may be body);
    // the terminator may straddle the seam, so search from just before it.
    const before = this.carryLength;
    const max = limit + terminator.length;
    this.keep(chunk, at, Math.min(chunk.length, at + max - before));
    const carried = this.carry.subarray(0, this.carryLength);
    const found = carried.indexOf(terminator, Math.max(0, before - terminator.length + 1));
    if (found === -1) {
      if (this.carryLength >= max) throw new HttpClientError(tooLong);
      return undefined;
    }
    if (found > limit) throw new HttpClientError(tooLong);
    this.carryLength = 0;
    return { text: carried.toString('latin1', 0, found), next: at + found + terminator.length - before };
  }

  /** Appends `chunk[start..end)` to `carry`, growing it by doubling. */
  private keep(chunk: Buffer, start: number, end: number): void {
    const length = this.carryLength + end - start;
    if (length > this.carry.length) {
      const grown = Buffer.allocUnsafe(Math.max(length, 2 * this.carry.length, 256));
      this.carry.copy(grown, 0, 0, this.carryLength);
      this.carry = grown;
    }
    chunk.copy(this.carry, this.carryLength, start, end);
    this.carryLength = length;
  }
}

function bodyTooLarge(): HttpClientError {
  return new HttpClientError('protocol:body_too_large', `a body above ${maxBodyBytes} bytes`);
}
