// Screenshots of pages as the e2e admin sees them, for looking at a change:
//   node perf/screenshots.mjs OUT_DIR [WIDTHS] [PATHS] [light|dark]
// from end2end/, with a server on 127.0.0.1:3000 and E2E_PASSWORD set, e.g.
//   node perf/screenshots.mjs /tmp/shots 390,1280,1440,1920 /activity-log,/admin-sessions dark
import { chromium } from '@playwright/test';
const base = 'http://127.0.0.1:3000';
const [,, outDir, widthsArg, pathsArg, theme] = process.argv;
const widths = (widthsArg || '390,1280,1440,1920').split(',').map(Number);
const paths = (pathsArg || '/activity-log').split(',');
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
for (const width of widths) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  if (theme) await context.addCookies([{ name: 'auditdeck_theme', value: theme, url: base }]);
  const page = await context.newPage();
  await page.goto(base + '/login');
  await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' });
  await page.getByLabel('Username or email').fill('e2e-admin');
  await page.getByLabel('Password').fill(process.env.E2E_PASSWORD);
  await page.getByRole('button', { name: /sign in/i }).click();
  await page.getByTestId('user-menu').waitFor();
  for (const p of paths) {
    await page.goto(base + p);
    await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' });
    await page.waitForTimeout(400);
    const name = `${outDir}/${p.replace(/[^a-z0-9]+/gi, '_')}_${width}${theme ? '_' + theme : ''}.png`;
    await page.screenshot({ path: name, fullPage: false });
    console.log(name);
  }
  await context.close();
}
await browser.close();
