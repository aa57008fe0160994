/** Public API of dsd. */
export { createApp, type DsdApp } from './server/app.js';
export { createDsdMiddleware, type DsdMiddlewareOptions, type DsdRouter } from './server/middleware.js';
export { startDsd, type RunningDsd } from './server/main.js';
export { loadConfig, loadConfigFromProcess, ConfigError } from './config/load-config.js';
export type * from './config/types.js';
export { DsdError, InvalidRequestError, UpstreamError, type DsdErrorCode } from './errors.js';
export { startDemoBackends, demoModels, type DemoBackends } from './demo/demo-backends.js';
export { LlamaEmulator } from './demo/llamacpp-emulator.js';
export type { EmulatedLatency, EmulatorStats } from './demo/emulated-server.js';
export { VllmEmulator } from './demo/vllm-emulator.js';
