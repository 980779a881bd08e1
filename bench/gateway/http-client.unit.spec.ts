import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  HttpClientError,
  type HttpClientOptions,
  type HttpResponse,
  maxBodyBytes,
  maxHeaderBytes,
  RawHttpClient,
  ResponseParser,
} from './http-client.js';

const host = '127.0.0.1';
/** Everything a test starts, stopped after it whatever happened. */
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Served {
  readonly url: string;
  /** Connections accepted so far, and the server side of each. */
  readonly sockets: net.Socket[];
}

function listening(server: net.Server, sockets: net.Socket[]): Promise<Served> {
  server.on('connection', (socket: net.Socket) => sockets.push(socket));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (typeof address !== 'object' || address === null) throw new Error('no address');
      resolve({ url: `http://${host}:${address.port}`, sockets });
    });
  });
}

function httpServer(handler: http.RequestListener): Promise<Served> {
  return listening(http.createServer(handler), []);
}

/**
 * A `net` server that answers by hand: `answer` gets each complete request (head and
 * content-length body) with the connection's number, counting from 0.
 */
function rawServer(
  answer: (socket: net.Socket, request: string, connection: number) => void,
): Promise<Served> {
  let accepted = 0;
  const server = net.createServer((socket) => {
    const connection = accepted++;
    let buffered = '';
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => {
      buffered += data.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? '0');
      if (buffered.length < end + 4 + length) return;
      const request = buffered.slice(0, end + 4 + length);
      buffered = buffered.slice(end + 4 + length);
      answer(socket, request, connection);
    });
  });
  return listening(server, []);
}

function client(url: string, options: Partial<HttpClientOptions> = {}): RawHttpClient {
  const created = new RawHttpClient({
    baseUrl: url,
    connections: 2,
    queueMax: 100,
    requestTimeoutMs: 10_000,
    ...options,
  });
  cleanups.push(() => created.destroy());
  return created;
}

function get(target: RawHttpClient, path = '/'): Promise<HttpResponse> {
  return target.request(target.head('GET', path), '');
}

/** The kind the promise rejects with (fails the test if it resolves). */
async function kindOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof HttpClientError) return error.kind;
    throw error;
  }
  throw new Error('expected a rejection');
}

/** The kind `run` throws, or undefined if it returns. */
function thrownKind(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof HttpClientError) return error.kind;
    throw error;
  }
  return undefined;
}

const okHead = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n';

describe('RawHttpClient against node:http', () => {
  it('sends head, key and body in one request and reads a JSON answer', async () => {
    const served = await httpServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (part: string) => {
        body += part;
      });
      request.on('end', () => {
        response.writeHead(201, { 'content-type': 'application/json' });
        response.end(
          JSON.stringify({
            method: request.method,
            url: request.url,
            host: request.headers.host,
            type: request.headers['content-type'],
            key: request.headers['idempotency-key'],
            length: request.headers['content-length'],
            body,
          }),
        );
      });
    });
    const http1 = client(served.url);
    const head = http1.head('POST', '/v1/orders', { 'content-type': 'application/json' });
    const response = await http1.request(`${head}idempotency-key: k-1\r\n`, '{"name":"Zoë"}');
    expect(response.status).toBe(201);
    expect(JSON.parse(response.body)).toEqual({
      method: 'POST',
      url: '/v1/orders',
      host: served.url.slice('http://'.length),
      type: 'application/json',
      key: 'k-1',
      length: String(Buffer.byteLength('{"name":"Zoë"}')),
      body: '{"name":"Zoë"}',
    });
  });

  it('reads a chunked answer (several writes, no content-length)', async () => {
    const served = await httpServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('first ');
      response.write('second ');
      response.end('third');
    });
    const response = await get(client(served.url));
    expect(response).toEqual({ status: 200, body: 'first second third' });
  });

  it('reuses its keep-alive connections for sequential requests', async () => {
    const served = await httpServer((request, response) => response.end(request.url));
    const http1 = client(served.url, { connections: 4 });
    for (let index = 0; index < 50; index++) {
      expect((await get(http1, `/${index}`)).body).toBe(`/${index}`);
    }
    expect(served.sockets).toHaveLength(1);
    expect(http1.connectsTotal).toBe(1);
  });

  it('queues requests beyond its connections and answers all of them in turn', async () => {
    const served = await httpServer((request, response) => response.end(request.url));
    const http1 = client(served.url, { connections: 3 });
    const bodies = await Promise.all(Array.from({ length: 30 }, (_, index) => get(http1, `/${index}`)));
    expect(bodies.map((response) => response.body)).toEqual(
      Array.from({ length: 30 }, (_, index) => `/${index}`),
    );
    expect(served.sockets.length).toBeLessThanOrEqual(3);
  });

  it('reconnects after an answer with connection: close', async () => {
    const served = await httpServer((_request, response) => {
      response.setHeader('connection', 'close');
      response.end('bye');
    });
    const http1 = client(served.url);
    expect(await get(http1)).toEqual({ status: 200, body: 'bye' });
    expect(await get(http1)).toEqual({ status: 200, body: 'bye' });
    expect(http1.connectsTotal).toBe(2);
    expect(served.sockets).toHaveLength(2);
  });

  it('reconnects after the server closed an idle keep-alive connection', async () => {
    const served = await httpServer((_request, response) => response.end('ok'));
    const http1 = client(served.url);
    expect((await get(http1)).body).toBe('ok');
    served.sockets[0]?.destroy();
    await vi.waitFor(() => expect(http1.openSockets).toBe(0));
    expect((await get(http1)).body).toBe('ok');
    expect(served.sockets).toHaveLength(2);
  });
});

describe('RawHttpClient against hand-written answers', () => {
  it('reads chunk extensions and trailers', async () => {
    const served = await rawServer((socket) => {
      socket.write(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' +
          '4;name=value\r\nWiki\r\n5\r\npedia\r\nA\r\n in chunks\r\n0\r\nX-Trailer: 1\r\n\r\n',
      );
    });
    expect(await get(client(served.url))).toEqual({ status: 200, body: 'Wikipedia in chunks' });
  });

  it('reads an answer written one byte at a time, then the next one', async () => {
    const answer = `${okHead}Content-Length: 11\r\n\r\nhello world`;
    const served = await rawServer((socket) => {
      void (async () => {
        for (const byte of answer) await new Promise((resolve) => socket.write(byte, resolve));
      })();
    });
    const http1 = client(served.url, { connections: 1 });
    expect(await get(http1)).toEqual({ status: 200, body: 'hello world' });
    expect(await get(http1)).toEqual({ status: 200, body: 'hello world' });
    expect(http1.connectsTotal).toBe(1);
  });

  it('reads a body that lasts until the server closes', async () => {
    const served = await rawServer((socket) => socket.end(`${okHead}\r\nuntil the end`));
    const http1 = client(served.url);
    expect(await get(http1)).toEqual({ status: 200, body: 'until the end' });
    expect(await get(http1)).toEqual({ status: 200, body: 'until the end' });
  });

  it('times out a request nobody answers, and the next request works on a new connection', async () => {
    const served = await rawServer((socket, _request, connection) => {
      if (connection > 0) socket.write(`${okHead}Content-Length: 2\r\n\r\nok`);
    });
    const http1 = client(served.url, { connections: 1, requestTimeoutMs: 150 });
    expect(await kindOf(get(http1))).toBe('timeout:headers');
    // The silent connection was closed by the client.
    await vi.waitFor(() => expect(served.sockets[0]?.destroyed).toBe(true));
    expect(await get(http1)).toEqual({ status: 200, body: 'ok' });
    expect(http1.connectsTotal).toBe(2);
  });

  it('times out a body that stops coming as timeout:body', async () => {
    const served = await rawServer((socket) => socket.write(`${okHead}Content-Length: 10\r\n\r\nhalf`));
    expect(await kindOf(get(client(served.url, { requestTimeoutMs: 150 })))).toBe('timeout:body');
  });

  it('fails a head larger than the bound', async () => {
    const served = await rawServer((socket) =>
      socket.write(`${okHead}X-Big: ${'a'.repeat(maxHeaderBytes)}\r\nContent-Length: 0\r\n\r\n`),
    );
    expect(await kindOf(get(client(served.url)))).toBe('protocol:headers_too_large');
  });

  it('fails a body larger than the bound, by content-length or by chunks', async () => {
    const served = await rawServer((socket, request) => {
      if (request.startsWith('GET /fixed '))
        socket.write(`${okHead}Content-Length: ${maxBodyBytes + 1}\r\n\r\n`);
      else {
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        const chunk = 'a'.repeat(64 * 1024);
        for (let sent = 0; sent <= maxBodyBytes; sent += chunk.length) socket.write(`10000\r\n${chunk}\r\n`);
      }
    });
    const http1 = client(served.url);
    expect(await kindOf(get(http1, '/fixed'))).toBe('protocol:body_too_large');
    expect(await kindOf(get(http1, '/chunked'))).toBe('protocol:body_too_large');
  });

  it('fails on bytes after the answer and starts the next request on a new connection', async () => {
    const one = `${okHead}Content-Length: 3\r\n\r\none`;
    const served = await rawServer((socket, _request, connection) =>
      socket.write(connection === 0 ? one + one : one),
    );
    const http1 = client(served.url, { connections: 1 });
    expect(await kindOf(get(http1))).toBe('protocol:unexpected_bytes');
    expect(await get(http1)).toEqual({ status: 200, body: 'one' });
    expect(http1.connectsTotal).toBe(2);
  });

  it('fails garbage as a protocol error', async () => {
    const served = await rawServer((socket) => socket.write('SMTP ready\r\n\r\n'));
    expect(await kindOf(get(client(served.url)))).toBe('protocol:bad_status_line');
  });

  it('fails a request whose connection closes before the answer, then reconnects', async () => {
    const served = await rawServer((socket, _request, connection) => {
      if (connection === 0) socket.end();
      else socket.write(`${okHead}Content-Length: 2\r\n\r\nok`);
    });
    const http1 = client(served.url, { connections: 1 });
    expect(await kindOf(get(http1))).toBe('network:socket_closed');
    expect(await get(http1)).toEqual({ status: 200, body: 'ok' });
  });

  it('fails with the errno code when nothing listens', async () => {
    const served = await rawServer(() => {});
    const closedUrl = served.url;
    await cleanups.pop()?.();
    expect(await kindOf(get(client(closedUrl)))).toBe('network:ECONNREFUSED');
  });

  it('fails a request beyond the queue bound with queue_full', async () => {
    const served = await rawServer(() => {});
    const http1 = client(served.url, { connections: 1, queueMax: 1 });
    const inFlight = kindOf(get(http1));
    const queued = kindOf(get(http1));
    expect(await kindOf(get(http1))).toBe('queue_full');
    await http1.destroy();
    expect(await inFlight).toBe('aborted');
    expect(await queued).toBe('aborted');
  });

  it('destroy() fails requests in flight and queued with aborted, and later ones too', async () => {
    let received = 0;
    const served = await rawServer(() => {
      received++;
    });
    const http1 = client(served.url, { connections: 2 });
    const pending = Array.from({ length: 5 }, () => kindOf(get(http1)));
    await vi.waitFor(() => expect(received).toBe(2));
    await http1.destroy();
    expect(await Promise.all(pending)).toEqual(Array.from({ length: 5 }, () => 'aborted'));
    expect(http1.openSockets).toBe(0);
    expect(await kindOf(get(http1))).toBe('aborted');
  });
});

describe('ResponseParser', () => {
  const json = '{"a":"ünï"}';
  const fixed = `HTTP/1.1 201 Created\r\ncontent-length: ${Buffer.byteLength(json)}\r\nConnection: keep-alive\r\n\r\n${json}`;
  const chunked =
    'HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: chunked\r\n\r\n3\r\nabc\r\n1;x=y\r\nd\r\n0\r\nT: v\r\n\r\n';

  /** Feeds `bytes` in the given pieces; the response must come with the last one and not before. */
  function parse(pieces: readonly Buffer[]): HttpResponse {
    const parser = new ResponseParser();
    let response: HttpResponse | undefined;
    for (const [index, piece] of pieces.entries()) {
      expect(response, `answer before piece ${index}`).toBeUndefined();
      response = parser.feed(piece);
    }
    expect(parser.extraBytes).toBe(0);
    if (response === undefined) throw new Error('no answer');
    return response;
  }

  it.each([
    ['content-length', fixed, { status: 201, body: json }],
    ['chunked', chunked, { status: 200, body: 'abcd' }],
  ])('parses a %s answer split at every position and byte by byte', (_name, text, expected) => {
    const bytes = Buffer.from(text);
    expect(parse([bytes])).toEqual(expected);
    for (let at = 1; at < bytes.length; at++) {
      expect(parse([bytes.subarray(0, at), bytes.subarray(at)])).toEqual(expected);
    }
    expect(parse(Array.from(bytes, (byte) => Buffer.from([byte])))).toEqual(expected);
  });

  it('skips an interim 100 answer', () => {
    expect(parse([Buffer.from(`HTTP/1.1 100 Continue\r\n\r\n${fixed}`)])).toEqual({
      status: 201,
      body: json,
    });
  });

  it('reads connection: close and counts bytes beyond the answer', () => {
    const parser = new ResponseParser();
    const response = parser.feed(Buffer.from(`${okHead}Connection: close\r\nContent-Length: 1\r\n\r\nxyz`));
    expect(response).toEqual({ status: 200, body: 'x' });
    expect(parser.keepAlive).toBe(false);
    expect(parser.extraBytes).toBe(2);
  });

  it.each([
    ['a bad content-length', `${okHead}Content-Length: 1x\r\n\r\n`, 'protocol:bad_content_length'],
    [
      'conflicting content-lengths',
      `${okHead}Content-Length: 1\r\nContent-Length: 2\r\n\r\n`,
      'protocol:bad_content_length',
    ],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'protocol:bad_chunk'],
    [
      'no CRLF after a chunk',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc',
      'protocol:bad_chunk',
    ],
    ['a header without a colon', `${okHead}Nonsense\r\n\r\n`, 'protocol:bad_header'],
    [
      'gzip without chunked',
      `${okHead}Transfer-Encoding: gzip\r\n\r\n`,
      'protocol:unsupported_transfer_encoding',
    ],
  ])('rejects %s', (_name, text, kind) => {
    expect(thrownKind(() => new ResponseParser().feed(Buffer.from(text)))).toBe(kind);
  });

  it('bounds a head that never ends, also when it comes in small pieces', () => {
    const parser = new ResponseParser();
    const piece = Buffer.from(`X-${'a'.repeat(1_000)}: b\r\n`);
    let kind: string | undefined;
    for (let fed = 0; fed <= maxHeaderBytes + piece.length && kind === undefined; fed += piece.length) {
      kind = thrownKind(() => parser.feed(piece));
    }
    expect(kind).toBe('protocol:headers_too_large');
  });
});
