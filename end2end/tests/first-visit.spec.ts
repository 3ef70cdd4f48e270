import { expect, test } from '@playwright/test';
import { firstVisit, kb, pagePaths, signInContext } from './first-visit';

// What a first visit downloads (WebAssembly, JavaScript and CSS, as
// served). Sizes are deterministic, so this is a test; the time to
// interactive is measured by perf/first-visit.spec.ts.
//
// PRODUCT.md's budget is 350 KB. Not every page meets it yet: the code all
// pages share is 254 KB of brotli on its own (see README, First visit). Until they do, each page has
// a ceiling at its size today plus 1 KB, so a change can only shrink it.
// The release build writes the checkout's and Cargo's folders as fixed names
// (build_release in scripts/setup.sh), so the sizes do not depend on where
// the project is cloned; before it did, a clone in another folder came out
// up to 1.6 KB larger and failed its ceiling. What still varies is the order
// in which wasm-split writes the names its loader shares (the WebAssembly is
// byte for byte the same): two builds of one commit differed by 0.3 KB on
// every page. (Each new feature's pages raise
// every page by more than their code explains: the backups' card 7-33 KB,
// the two alerts pages 9-29 KB, the weekly digest 2-10 KB on every page and
// 72 KB on /alerts, though a plain form replaced its ActionForm; the activity
// chart, breakdowns and Overview 4.5 KB on /login, 10-24 KB on the other pages
// and 72 KB on /activity-log; editing alert rules 16 KB on /settings/alerts,
// the digest in the viewer's zone 10 KB on /alerts, 0-3 KB elsewhere. To be
// looked into: wasm-split's chunks across more routes are the suspect.)
const TARGET = 350_000;
const CEILING: Record<string, number> = {
  '/login': 343_227,
  '/overview': 428_540,
  '/activity-log': 664_334,
  '/admin-sessions': 536_576,
  '/integrity': 414_924,
  '/settings/users': 405_877,
  '/settings/api-keys': 398_035,
  '/settings/retention': 414_638,
  '/settings/streams': 480_985,
  '/alerts': 468_420,
  '/settings/alerts': 446_801,
};

for (const path of pagePaths) {
  test(`a first visit to ${path} downloads no more code and style than its ceiling`, async ({ browser }) => {
    const context = await browser.newContext();
    if (path !== '/login') await signInContext(context);
    const page = await context.newPage();
    const visit = await firstVisit(page, path);
    const gap = visit.assets > TARGET ? `, ${kb(visit.assets - TARGET)} KB over the 350 KB target` : '';
    console.log(`${path}: ${kb(visit.assets)} KB, ${visit.assets} bytes (wasm ${kb(visit.wasm)}, js ${kb(visit.js)}, css ${kb(visit.css)})${gap}`);
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
