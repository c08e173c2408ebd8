/**
 * HTTP plumbing shared by the protocol routes: statuses that are not domain errors, JSON
 * answers, and request bodies read up to a limit.
 */
import type http from 'node:http';
import { errorMessage } from '../lib/errors';

/** An answer with a status of its own (413, 401, 503 not ready, 504…) and optional headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: http.OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, `request body larger than ${maxBytes} bytes`);
}

/**
 * The request body, at most `maxBytes`. A larger one (by its Content-Length, or as it arrives)
 * rejects at once, while the rest of the body is still read and discarded: the client, still
 * sending, then reads the 413 instead of a reset connection (the server's request timeout
 * bounds the discarding).
 */
export function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = Number(req.headers['content-length'] ?? 0) > maxBytes;
    if (over) reject(tooLarge(maxBytes));
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > maxBytes) {
        over = true;
        chunks.length = 0;
        reject(tooLarge(maxBytes));
      } else chunks.push(c);
    });
    req.on('end', () => over || resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** JSON text → value; NaN and Infinity (which JSON cannot carry) named in the error. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const hint = /(?:^|[\s,:[])-?(?:NaN|Infinity)\b/.test(text) ? ' (JSON has no NaN or Infinity: send a missing value as null)' : '';
    throw new HttpError(400, `request body is not JSON: ${errorMessage(err)}${hint}`);
  }
}
