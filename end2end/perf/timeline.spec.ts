import { test } from '@playwright/test';
import { signInContext } from '../tests/first-visit';

// On demand: where a first visit's time goes, file by file (Resource Timing),
// for the page in PERF_PATH (default /activity-log), cache off.
test('first visit timeline', async ({ browser }) => {
  const path = process.env.PERF_PATH ?? '/activity-log';
  const context = await browser.newContext();
  if (path !== '/login') await signInContext(context);
  const page = await context.newPage();
  await page.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (document.getElementById('app')?.getAttribute('data-hydrated') === 'true') {
        (window as any).__hydratedAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await page.goto(path);
  await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' });
  await page.waitForLoadState('networkidle');
  const timeline = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
    const rows = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).map(
      (r) => `${r.startTime.toFixed(0).padStart(5)} → ${r.responseEnd.toFixed(0).padStart(5)}  ${r.initiatorType.padEnd(6)} ${new URL(r.name).pathname.slice(0, 70)}`,
    );
    return [
      `html responseEnd ${nav.responseEnd.toFixed(0)}  domContentLoaded ${nav.domContentLoadedEventEnd.toFixed(0)}  load ${nav.loadEventEnd.toFixed(0)}`,
      ...rows,
      `hydrated ${((window as any).__hydratedAt as number).toFixed(0)}`,
    ].join('\n');
  });
  console.log(`\n${path}\n${timeline}`);
  await context.close();
});
