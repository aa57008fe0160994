/** Public API of dsd. */

export { ConfigError, loadConfig, loadConfigFromProcess } from './config/load-config.js';
export type * from './config/types.js';
export { type DemoBackends, demoModels, startDemoBackends } from './demo/demo-backends.js';
export type { EmulatedLatency, EmulatorStats } from './demo/emulated-server.js';
export { LlamaEmulator } from './demo/llamacpp-emulator.js';
export { VllmEmulator } from './demo/vllm-emulator.js';
export { DsdError, type DsdErrorCode, InvalidRequestError, UpstreamError } from './errors.js';
export { createApp, type DsdApp } from './server/http/app.js';
export { createDsdMiddleware, type DsdMiddlewareOptions, type DsdRouter } from './server/http/middleware.js';
export { type RunningDsd, startDsd } from './server/main.js';
