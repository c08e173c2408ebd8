import pino, { type Logger } from 'pino';

/** Structured JSON logs on stderr (stdout stays free for command output). Never log secrets. */
export function createLogger(level: string = 'info', name = 'inferflow'): Logger {
  return pino({ name, level, redact: { paths: ['*.apiKey', '*.secretAccessKey', '*.password', 'apiKey', 'password'], censor: '[redacted]' } }, pino.destination(2));
}
