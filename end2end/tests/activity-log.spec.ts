import { test, expect } from '@playwright/test';
import { markWindow, openHydrated, rowIds, signIn, signInRequest, windowIsMarked } from './helpers';

const rows = 'tbody tr[data-event-id]';

test.beforeEach(async ({ page }) => {
  await signIn(page, 'viewer');
});

test('the server sends the first page of rows in the HTML', async ({ request }) => {
  await signInRequest(request, 'viewer');
  const response = await request.get('/activity-log');
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html.match(/data-event-id=/g)?.length).toBe(25);
  expect(html).toContain('Activity Log');
  // The browser bundle the page asks for exists (a mismatch means no hydration).
  for (const asset of html.match(/\/pkg\/[\w.-]+\.(wasm|js)/g) ?? []) {
    const res = await request.get(asset);
    expect(res.status(), asset).toBe(200);
  }
  expect(html).toMatch(/\/pkg\/auditdeck(_bg)?(\.[A-Za-z0-9_-]{22})?\.wasm/);
});

test('the Activity Log loads with rows and hydrates', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await openHydrated(page, '/activity-log');
  await expect(page.getByTestId('user-menu')).toContainText('Viewer');
  await expect(page.getByRole('heading', { name: 'Activity Log', level: 1 })).toBeVisible();
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Activity Log' })).toHaveAttribute(
    'aria-current',
    'page',
  );
  await expect(page.locator(rows)).toHaveCount(25);
  for (const header of ['ID', 'Date', 'IP address', 'Initiator', 'Action', 'Table', 'Primary key', 'Description']) {
    await expect(page.getByRole('columnheader', { name: header, exact: true })).toBeVisible();
  }
  // The page runs under its Content-Security-Policy without a violation.
  expect(errors).toEqual([]);
  // Newest first.
  const times = await page.locator(`${rows} time`).evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime') ?? ''));
  expect([...times].sort().reverse()).toEqual(times);
});

test('the pager moves forward and back without a full reload', async ({ page }) => {
  await openHydrated(page, '/activity-log');
  const first = await rowIds(page);
  await markWindow(page);

  await page.getByRole('link', { name: 'Next page' }).click();
  // Keyset paging: the address names the last row seen, not an offset.
  await expect(page).toHaveURL(new RegExp(`[?&]page=2&after=${first[24]}\\b`));
  await expect(page.locator(rows).first()).not.toHaveAttribute('data-event-id', String(first[0]));
  const second = await rowIds(page);
  expect(second).toHaveLength(25);
  expect(second.some((id) => first.includes(id))).toBe(false);
  await expect(page.getByTestId('pager-summary')).toHaveText(/^Page 2 of \d+/);

  await page.getByRole('link', { name: 'Next page' }).click();
  await expect(page).toHaveURL(/[?&]page=3\b/);
  await expect(page.locator('.page-link.current')).toHaveText('3');

  await page.getByRole('link', { name: 'Previous page' }).click();
  await expect(page).toHaveURL(/[?&]page=2&before=\d+/);
  await expect.poll(() => rowIds(page)).toEqual(second);

  // The last page ends with the oldest event; from there, back again.
  await page.getByRole('link', { name: 'Last page' }).click();
  await expect(page).toHaveURL(/[?&]end=1\b/);
  await expect(page.getByRole('link', { name: 'Next page' })).toHaveCount(0);
  await page.goBack();
  await expect(page).toHaveURL(/[?&]page=2&before=\d+/);

  // The browser's Back button goes through the same history.
  await page.goBack();
  await expect(page).toHaveURL(/[?&]page=3\b/);
  await page.goBack();
  await page.goBack();
  await expect(page).toHaveURL(/\/activity-log$/);
  await expect.poll(() => rowIds(page)).toEqual(first);
  expect(await windowIsMarked(page)).toBe(true);
});

test('the page size selector changes the rows shown and lives in the URL', async ({ page }) => {
  await openHydrated(page, '/activity-log?page=4');
  await markWindow(page);
  await page.getByLabel('Rows per page').selectOption('100');
  await expect(page).toHaveURL(/[?&]size=100\b/);
  await expect(page).not.toHaveURL(/page=4/);
  await expect(page.locator(rows)).toHaveCount(100);
  await expect(page.locator('.page-link.current')).toHaveText('1');
  expect(await windowIsMarked(page)).toBe(true);

  await page.getByLabel('Rows per page').selectOption('10');
  await expect(page.locator(rows)).toHaveCount(10);

  await page.reload();
  await expect(page.locator(rows)).toHaveCount(10);
  await expect(page.getByLabel('Rows per page')).toHaveValue('10');
});

test('a malformed page parameter shows a clear message', async ({ page }) => {
  await openHydrated(page, '/activity-log?page=zero');
  await expect(page.getByRole('alert')).toContainText('page: "zero" is not a page number');
  await expect(page.locator(rows)).toHaveCount(0);
});

test('events sent through the ingest API appear on the first page', async ({ page, request }) => {
  const key = process.env.E2E_API_KEY;
  expect(key, 'scripts/test.sh exports E2E_API_KEY').toBeTruthy();
  const marker = `e2e-${Date.now()}`;
  const response = await request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: [
      { action: 'PUBLISH', table: 'pages', primary_key: marker, description: `Published ${marker}` },
      { action: 'UPDATE', table: 'pages', primary_key: marker, description: `<b>Edited</b> ${marker}`, before: { a: 1 }, after: { a: 2 } },
    ],
  });
  expect(response.status()).toBe(201);
  const { ids } = await response.json();
  expect(ids).toHaveLength(2);

  await openHydrated(page, '/activity-log');
  const top = page.locator(rows).first();
  await expect(top).toHaveAttribute('data-event-id', String(ids[1]));
  // Logged text is shown as text, never as markup.
  await expect(top).toContainText(`<b>Edited</b> ${marker}`);
  await expect(page.locator(rows).nth(1)).toContainText(`Published ${marker}`);

  const refused = await request.post('/api/v1/events', {
    headers: { Authorization: 'Bearer adk_forged' },
    data: { action: 'DELETE', description: `forged ${marker}` },
  });
  expect(refused.status()).toBe(401);
  await page.reload();
  await expect(page.locator('table.events tbody')).not.toContainText(`forged ${marker}`);
});

test('a slow count delays neither the rows nor the first click', async ({ page }) => {
  // Every count answers eight seconds late; the rows must not wait for it.
  let counts = 0;
  await page.route('**/api/count_events*', async (route) => {
    counts += 1;
    await new Promise((done) => setTimeout(done, 8_000));
    await route.continue();
  });
  await openHydrated(page, '/activity-log?size=10');
  await expect(page.locator(rows)).toHaveCount(10);
  await expect(page.getByTestId('result-count')).toHaveText('Counting…');
  // A header click sorts at once, while the count is still on its way.
  await page.getByRole('columnheader', { name: 'Action', exact: true }).getByRole('link').click();
  await expect(page).toHaveURL(/[?&]sort=action\b/);
  await expect(page.getByRole('columnheader', { name: 'Action', exact: true })).toHaveAttribute('aria-sort', 'ascending');
  await expect
    .poll(async () => {
      const actions = await page.locator(`${rows} td:nth-child(5)`).allInnerTexts();
      return actions.length === 10 && actions.join() === [...actions].sort().join();
    })
    .toBe(true);
  // All of that happened with the count still on its way.
  await expect(page.getByTestId('result-count')).toHaveText('Counting…');
  // Then the count fills in, in place.
  await expect(page.getByTestId('result-count')).toHaveText(/^\d[\d,]* events?$/, { timeout: 20_000 });
  expect(counts).toBeGreaterThan(0);
});
