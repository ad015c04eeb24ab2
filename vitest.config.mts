import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    // The native kernels use every core; running test files one at a time keeps timings sane.
    fileParallelism: false,
    testTimeout: 60_000,
  },
});
