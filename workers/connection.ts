import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { TemporalConfig } from '../lib/config/env';
import { TransientError, errorMessage } from '../lib/errors';

/** How long a client or worker waits for a TCP answer from the Temporal address before it names the address it cannot reach. */
export const TEMPORAL_PROBE_TIMEOUT_MS = 3_000;

/** Connection options shared by the worker (NativeConnection) and clients (Connection). */
export function connectionOptions(t: TemporalConfig) {
  const tls = t.tls
    ? {
        ...(t.tls.serverName ? { serverNameOverride: t.tls.serverName } : {}),
        ...(t.tls.caPath ? { serverRootCACertificate: readFileSync(t.tls.caPath) } : {}),
        ...(t.tls.certPath && t.tls.keyPath ? { clientCertPair: { crt: readFileSync(t.tls.certPath), key: readFileSync(t.tls.keyPath) } } : {}),
      }
    : undefined;
  return {
    address: t.address,
    ...(tls ? { tls } : {}),
    ...(t.apiKey ? { apiKey: t.apiKey } : {}),
  };
}

function unreachable(address: string, reason: string): TransientError {
  return new TransientError(`Temporal server at ${address} is not reachable (${reason}): start one with "inferflow temporal" or set TEMPORAL_ADDRESS`, { address });
}

/**
 * Fail fast when nothing listens at the Temporal address: the SDKs retry a refused connection
 * until their deadline and then report it without the address. A TCP connect answers in
 * milliseconds; TLS and gRPC problems are left to the SDK's own connect.
 *
 * @throws TransientError naming the address (refused, unknown host, no answer within the timeout)
 */
export async function checkTemporalReachable(address: string, timeoutMs = TEMPORAL_PROBE_TIMEOUT_MS): Promise<void> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(at + 1));
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host, port });
    const done = (err?: Error) => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(unreachable(address, `no answer within ${timeoutMs / 1000} s`)));
    socket.once('connect', () => done());
    socket.once('error', (err: NodeJS.ErrnoException) => done(unreachable(address, err.code ?? errorMessage(err))));
  });
}

/** Run a connect call; its failure becomes a TransientError that names the address. */
export async function connectOrExplain<T>(address: string, connect: () => Promise<T>): Promise<T> {
  await checkTemporalReachable(address);
  try {
    return await connect();
  } catch (err) {
    throw unreachable(address, errorMessage(err));
  }
}
