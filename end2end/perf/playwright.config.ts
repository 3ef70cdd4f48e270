import { defineConfig } from '@playwright/test';
import base from '../playwright.config';

// The suite's own configuration (its server, its Chromium), for the
// measurements in this folder; paths are relative to this file.
export default defineConfig({
  ...base,
  testDir: '.',
  webServer: { ...(base.webServer as object), cwd: '../..' } as typeof base.webServer,
});
