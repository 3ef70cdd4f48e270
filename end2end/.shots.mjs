import { chromium } from '@playwright/test';
const base = 'http://127.0.0.1:3400';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on('console', (m) => { if (m.type() === 'error') console.log('console error:', m.text()); });
await page.goto(base + '/login?next=%2Fintegrity');
await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' });
await page.getByLabel('Username or email').fill('shot');
await page.getByLabel('Password').fill('shot-password-1');
await page.getByRole('button', { name: 'Sign in' }).click();
await page.getByTestId('user-menu').waitFor();
await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' });
for (const step of process.argv.slice(2)) {
  const [kind, arg, file] = step.split('|');
  if (kind === 'goto') { await page.goto(base + arg); await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' }); }
  if (kind === 'click') { await page.getByTestId(arg).click(); await page.waitForTimeout(1500); }
  if (kind === 'shot') { await page.waitForTimeout(500); await page.screenshot({ path: arg, fullPage: true }); }
}
await browser.close();
