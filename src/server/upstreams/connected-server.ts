import type { ModelServer, ServerInfo } from '../../backends/types.js';

/**
 * A connected upstream server and what it said about itself. Its own module so that the pools
 * and the Upstreams that composes them depend on it, not on each other.
 */
export interface ConnectedServer {
  server: ModelServer;
  info: ServerInfo;
}
