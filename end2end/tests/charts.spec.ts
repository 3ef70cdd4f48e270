import { expect, Page, test } from '@playwright/test';
import { openHydrated, resultCount, signIn, signInRequest } from './helpers';

const bars = '.chart-plot g.bar';

/** The centre of bar `i` on screen. */
async function barCentre(page: Page, i: number) {
  const box = (await page.locator(bars).nth(i).locator('rect.hit').boundingBox())!;
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

test('the activity chart is drawn by the server, before any code runs', async ({ request }) => {
  await signInRequest(request, 'viewer');
  const html = await (await request.get('/activity-log')).text();
  expect(html).toContain('class="activity-chart"');
  expect(html).toMatch(/<g class="bar[^"]*"[^>]*><title>[^<]+: [\d,]+ events?/);
  // The counts as a table for screen readers.
  expect(html).toMatch(/<caption>Events per [a-z0-9 ]+(<!>)?<\/caption>/);
});

test('dragging across bars narrows the table to their range, and Back restores it', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await signIn(page, 'viewer');
  await openHydrated(page, '/activity-log');
  const total = await resultCount(page);
  const n = await page.locator(bars).count();
  expect(n).toBeGreaterThan(20);
  const a = await barCentre(page, n - 12);
  const b = await barCentre(page, n - 4);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, a.y, { steps: 4 });
  await page.mouse.move(b.x, b.y, { steps: 4 });
  await expect(page.locator('.chart-plot rect.band')).toBeVisible();
  await page.mouse.up();
  await expect(page).toHaveURL(/\/activity-log\?from=[^&]+&to=[^&]+$/);
  const url = new URL(page.url());
  const from = Date.parse(url.searchParams.get('from')!);
  const to = Date.parse(url.searchParams.get('to')!);
  expect(to).toBeGreaterThan(from);
  // Every row shown lies in the range, and there are fewer of them.
  const times = await page
    .locator('tbody tr[data-event-id] time')
    .evaluateAll((ts) => ts.map((t) => Date.parse(t.getAttribute('datetime')!)));
  expect(times.length).toBeGreaterThan(0);
  expect(times.every((t) => t >= from && t <= to + 1000)).toBe(true);
  await expect.poll(() => resultCount(page)).toBeLessThan(total);
  // The chart now spans the range in finer bars.
  await expect(page.locator('.chart-summary')).not.toHaveText(/bars of one day/);

  await page.goBack();
  await expect(page).toHaveURL(/\/activity-log$/);
  await expect.poll(() => resultCount(page)).toBe(total);
  // Nothing the page does trips its content security policy (no inline style).
  expect(errors).toEqual([]);
});

test('a click zooms to one bar; the keyboard selects and zooms as well', async ({ page }) => {
  await signIn(page, 'viewer');
  await openHydrated(page, '/activity-log');
  const n = await page.locator(bars).count();
  const title = await page.locator(bars).nth(n - 2).locator('title').textContent();
  const count = Number(title!.split(': ')[1].split(' ')[0].replace(/,/g, ''));
  const c = await barCentre(page, n - 2);
  await page.mouse.click(c.x, c.y);
  await expect(page).toHaveURL(/from=.*&to=/);
  if (count > 0) await expect.poll(() => resultCount(page)).toBe(count);

  // Arrow keys move a cursor over the bars (the readout says which),
  // Shift+arrows widen the selection, Enter zooms to it.
  await openHydrated(page, '/activity-log');
  const plot = page.locator('.chart-plot');
  await plot.focus();
  await page.keyboard.press('End');
  await expect(page.locator('.chart-readout')).toHaveText(/: (no events|[\d,]+ events?)/);
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('Shift+ArrowLeft');
  await page.keyboard.press('Shift+ArrowLeft');
  await expect(page.locator('.chart-plot rect.band')).toBeVisible();
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/from=.*&to=/);
});

test('clicking a top initiator filters the table by them', async ({ page }) => {
  await signIn(page, 'viewer');
  await openHydrated(page, '/activity-log?action=UPDATE');
  await page.getByText('Top initiators, actions, tables and IPs').click();
  const initiators = page.locator('.top-list').filter({ has: page.getByRole('heading', { name: 'Initiators' }) });
  const first = initiators.locator('li').first();
  const name = await first.getByRole('link').innerText();
  const n = Number((await first.locator('.top-count').innerText()).replace(/,/g, ''));
  await first.getByRole('link').click();
  await expect(page).toHaveURL(/[?&]user=[a-z_]+%3A|[?&]user=[a-z_]+:/);
  await expect(page).toHaveURL(/action=UPDATE/);
  await expect.poll(() => resultCount(page)).toBe(n);
  await expect
    .poll(async () => [...new Set(await page.locator('tbody tr[data-event-id] .initiator').allInnerTexts())])
    .toEqual([name]);
});

test('the Overview comes first after sign-in and its figures open the events behind them', async ({ page }) => {
  await openHydrated(page, '/login');
  await page.getByLabel('Username or email').fill('e2e-auditor');
  await page.getByLabel('Password').fill(process.env.E2E_PASSWORD!);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/overview$/);
  await expect(page.getByRole('heading', { name: 'Overview', level: 1 })).toBeVisible();
  await expect(page.locator('.activity-chart')).toBeVisible();
  for (const [id, action] of [
    ['figure-7d-failed', 'LOGIN_FAILED'],
    ['figure-24h-events', null],
  ] as const) {
    await openHydrated(page, '/overview');
    const figure = page.getByTestId(id);
    const n = Number((await figure.locator('.figure-value').innerText()).replace(/,/g, ''));
    await figure.click();
    await expect(page).toHaveURL(action ? new RegExp(`action=${action}&range=\\w+$`) : /\?range=24h$/);
    await expect.poll(() => resultCount(page)).toBe(n);
  }
  await openHydrated(page, '/overview');
  await page.getByTestId('figure-chain').click();
  await expect(page).toHaveURL(/\/integrity$/);
  await openHydrated(page, '/');
  await expect(page).toHaveURL(/\/overview$/);
});
