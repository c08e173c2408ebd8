import { readFileSync } from 'node:fs';
import type { TemporalConfig } from '../lib/config/env';

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
