import { expect, test } from '@playwright/test';
import { firstVisit, kb, pagePaths, signInContext } from './first-visit';

// What a first visit downloads (WebAssembly, JavaScript and CSS, as
// served). Sizes are deterministic, so this is a test; the time to
// interactive is measured by perf/first-visit.spec.ts.
//
// PRODUCT.md's budget is 350 KB. Not every page meets it yet: the code all
// pages share is 254 KB of brotli on its own (see README, First visit). Until they do, each page has
// a ceiling at its size today (plus 1.5 KB: the same commit built in
// another folder differs by up to 0.6 KB, the folder's path being written
// into the code), so a change can only shrink it. (Each new feature's pages raise
// every page by more than their code explains: the backups' card 7-33 KB,
// the two alerts pages 9-29 KB, the weekly digest 2-10 KB on every page and
// 72 KB on /alerts, though a plain form replaced its ActionForm; the activity
// chart, breakdowns and Overview 4.5 KB on /login, 10-24 KB on the other pages
// and 72 KB on /activity-log; editing alert rules 16 KB on /settings/alerts,
// the digest in the viewer's zone 10 KB on /alerts, 0-3 KB elsewhere; the
// mark that a page is hydrated, one call in each page's view, took six pages
// 0.3-0.4 KB past their ceilings, which were raised to their new size plus
// 1.5 KB. To be looked into: wasm-split's chunks across more routes are the
// suspect.)
const TARGET = 350_000;
const CEILING: Record<string, number> = {
  '/login': 344_400,
  '/overview': 430_400,
  '/activity-log': 666_200,
  '/admin-sessions': 538_500,
  '/integrity': 415_600,
  '/settings/users': 408_300,
  '/settings/api-keys': 398_500,
  '/settings/retention': 416_600,
  '/settings/streams': 482_100,
  '/alerts': 470_300,
  '/settings/alerts': 448_700,
};

for (const path of pagePaths) {
  test(`a first visit to ${path} downloads no more code and style than its ceiling`, async ({ browser }) => {
    const context = await browser.newContext();
    if (path !== '/login') await signInContext(context);
    const page = await context.newPage();
    const visit = await firstVisit(page, path);
    const gap = visit.assets > TARGET ? `, ${kb(visit.assets - TARGET)} KB over the 350 KB target` : '';
    console.log(`${path}: ${kb(visit.assets)} KB (wasm ${kb(visit.wasm)}, js ${kb(visit.js)}, css ${kb(visit.css)})${gap}`);
    // It is served compressed: the WebAssembly is smaller than its raw size.
    const wasm = await context.request.get(
      visit.files.map((f) => f.split(' ')[0]).find((f) => f.endsWith('.wasm'))!,
      { headers: { 'Accept-Encoding': 'br, gzip' } },
    );
    expect(wasm.headers()['content-encoding']).toBe('br');
    expect(wasm.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(visit.assets).toBeGreaterThan(0);
    expect(visit.assets).toBeLessThanOrEqual(CEILING[path]);
    await context.close();
  });
}

test('pages are never stored; the build files are kept for good', async ({ browser }) => {
  const context = await browser.newContext();
  await signInContext(context);
  const page = await context.newPage();
  const response = await page.goto('/activity-log');
  expect(response!.headers()['cache-control']).toBe('no-store');
  const css = await page.locator('link[rel="stylesheet"]').first().getAttribute('href');
  expect(css).toMatch(/^\/pkg\/auditdeck\.[A-Za-z0-9_-]{22}\.css$/);
  const style = await context.request.get(css!, { headers: { 'Accept-Encoding': 'gzip' } });
  expect(style.headers()['content-encoding']).toBe('gzip');
  expect(style.headers()['vary']?.toLowerCase()).toContain('accept-encoding');
  expect(style.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
  await context.close();
});
