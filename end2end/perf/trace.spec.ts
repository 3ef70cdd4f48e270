import { test } from '@playwright/test';
import * as fs from 'fs';
import { signInContext } from '../tests/first-visit';

// On demand: a Chromium performance trace of a first visit to PERF_PATH
// (default /activity-log), cache off, written to PERF_TRACE (default
// /tmp/first-visit-trace.json) for chrome://tracing or a script.
test('first visit trace', async ({ browser }) => {
  const path = process.env.PERF_PATH ?? '/activity-log';
  const context = await browser.newContext();
  if (path !== '/login') await signInContext(context);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await browser.startTracing(page, { categories: ['devtools.timeline', 'v8', 'v8.wasm', 'disabled-by-default-devtools.timeline', 'blink', 'loading'] });
  await page.goto(path);
  await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' });
  await page.waitForLoadState('networkidle');
  const trace = await browser.stopTracing();
  fs.writeFileSync(process.env.PERF_TRACE ?? '/tmp/first-visit-trace.json', trace);
  await context.close();
});
