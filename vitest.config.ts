import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 600_000,
    // Real llama-server processes are heavy on a 2-core machine: keep files from competing.
    fileParallelism: false,
    globalSetup: ['test/global-setup.ts'],
  },
});
