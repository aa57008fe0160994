import {
  type DestinationStream,
  type Logger as PinoLogger,
  pino,
  destination as pinoDestination,
  stdTimeFunctions,
} from 'pino';
import type { LogLevel } from './config/types.js';

/** Structured JSON logger. Callers never pass prompt text (unless DSD_LOG_PROMPTS) or secrets. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `bindings` (e.g. the request id) to every line. */
  child(bindings: Record<string, unknown>): Logger;
  /** Whether debug lines are written (to skip building per-round detail otherwise). */
  readonly debugEnabled: boolean;
}

function wrap(p: PinoLogger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (bindings) => lazyChild(p, bindings),
    get debugEnabled() {
      return p.isLevelEnabled('debug');
    },
  };
}

/**
 * A child made only when it first writes a line: every request gets one (for its id), and at the
 * usual levels most never write, while a pino child costs more than routing the request.
 */
function lazyChild(p: PinoLogger, bindings: Record<string, unknown>): Logger {
  let made: Logger | undefined;
  const write = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
    if (!p.isLevelEnabled(level)) return;
    made ??= wrap(p.child(bindings));
    made[level](msg, fields);
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (more) => lazyChild(p, { ...bindings, ...more }),
    get debugEnabled() {
      return p.isLevelEnabled('debug');
    },
  };
}

/**
 * A pino JSON-lines logger on stderr (stdout stays clean for CLI output). pino because it is fast,
 * well kept and asynchronous-friendly; the interface above keeps the rest of dsd independent of it.
 * Authorization headers are redacted should a caller ever log them.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream | ((line: string) => void)): Logger {
  const stream: DestinationStream =
    typeof destination === 'function'
      ? { write: (line: string) => destination(line.trimEnd()) }
      : (destination ?? pinoDestination({ dest: 2, sync: true }));
  return wrap(
    pino(
      {
        level,
        base: { service: 'dsd' },
        timestamp: stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        redact: {
          paths: ['authorization', '*.authorization', 'headers.authorization', 'apiKey', '*.apiKey'],
          censor: '[redacted]',
        },
      },
      stream,
    ),
  );
}
