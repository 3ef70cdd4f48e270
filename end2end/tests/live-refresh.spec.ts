import { APIRequestContext, expect, Page, test } from '@playwright/test';
import { markWindow, rowIds, signIn, windowIsMarked } from './helpers';

const rows = 'tbody tr[data-event-id]';

async function ingest(request: APIRequestContext, description: string): Promise<number> {
  const response = await request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${process.env.E2E_API_KEY}` },
    data: { action: 'PUBLISH', table: 'pages', primary_key: description, description },
  });
  expect(response.status()).toBe(201);
  return (await response.json()).ids[0];
}

/** Records, from now on, the fewest event rows ever on screen (checked at every DOM change). */
async function watchRows(page: Page) {
  await page.evaluate((selector) => {
    const w = window as any;
    w.__fewestRows = document.querySelectorAll(selector).length;
    const check = () => {
      w.__fewestRows = Math.min(w.__fewestRows, document.querySelectorAll(selector).length);
    };
    new MutationObserver(check).observe(document.body, { childList: true, subtree: true });
  }, rows);
}

const fewestRows = (page: Page) => page.evaluate(() => (window as any).__fewestRows as number);

async function setHidden(page: Page, hidden: boolean) {
  await page.evaluate((hidden) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('auto refresh brings new events in without a reload, keeping the rows on screen', async ({ page, request }) => {
  await signIn(page, 'viewer', '/activity-log');
  const control = page.getByTestId('auto-refresh');
  const toggle = control.getByRole('switch', { name: 'Auto refresh' });
  await expect(toggle).toHaveAttribute('aria-checked', 'false');
  const before = await rowIds(page);
  await markWindow(page);
  await watchRows(page);

  await control.getByLabel('Refresh interval').selectOption('2s');
  await toggle.click();
  await expect(toggle).toHaveAttribute('aria-checked', 'true');
  await expect(page).toHaveURL(/[?&]refresh=2s\b/);
  await expect(control.getByTestId('refresh-status')).toHaveText(/in \d s|Refreshing/);

  const marker = `live-${Date.now()}`;
  const id = await ingest(request, marker);
  const fresh = page.locator(`${rows}[data-event-id="${id}"]`);
  await expect(fresh).toBeVisible({ timeout: 6_000 });
  await expect(fresh).toContainText(marker);
  await expect(fresh).toHaveClass(/fresh-/);
  // Same document, and the rows never left the screen while it refreshed.
  expect(await windowIsMarked(page)).toBe(true);
  expect(await fewestRows(page)).toBe(before.length);
  const after = await rowIds(page);
  expect(after[0]).toBe(id);
  expect(after.slice(1, 10)).toEqual(before.slice(0, 9));

  // The choice is in the address: a reload keeps auto refresh on.
  await page.reload();
  await expect(page.getByTestId('auto-refresh').getByRole('switch')).toHaveAttribute('aria-checked', 'true');

  // Paused while the tab is hidden, resumed when it shows.
  await page.waitForFunction(() => (document.querySelector('#app') as HTMLElement)?.dataset.hydrated === 'true');
  await setHidden(page, true);
  const hiddenMarker = `hidden-${Date.now()}`;
  const hiddenId = await ingest(request, hiddenMarker);
  await page.waitForTimeout(5_000);
  await expect(page.locator(`${rows}[data-event-id="${hiddenId}"]`)).toHaveCount(0);
  await setHidden(page, false);
  await expect(page.locator(`${rows}[data-event-id="${hiddenId}"]`)).toBeVisible({ timeout: 6_000 });

  // Off: nothing changes any more.
  await page.getByTestId('auto-refresh').getByRole('switch').click();
  await expect(page).not.toHaveURL(/refresh=/);
  const frozen = await rowIds(page);
  const lateId = await ingest(request, `late-${Date.now()}`);
  await page.waitForTimeout(5_000);
  await expect(page.locator(`${rows}[data-event-id="${lateId}"]`)).toHaveCount(0);
  expect(await rowIds(page)).toEqual(frozen);
});

test('a failed refresh keeps the rows and says so quietly, then recovers', async ({ page, request }) => {
  await signIn(page, 'viewer', '/activity-log?refresh=2s');
  const before = await rowIds(page);
  await page.route('**/api/list_events', (route) => route.abort());
  const error = page.getByTestId('refresh-error');
  await expect(error).toBeVisible({ timeout: 8_000 });
  await expect(error).toContainText('Refresh failed');
  expect(await rowIds(page)).toEqual(before);
  await page.unroute('**/api/list_events');
  const id = await ingest(request, `recovered-${Date.now()}`);
  await expect(page.locator(`${rows}[data-event-id="${id}"]`)).toBeVisible({ timeout: 8_000 });
  await expect(error).toHaveCount(0);
});

test('Refresh now loads new events at once, with auto refresh off', async ({ page, request }) => {
  await signIn(page, 'admin', '/admin-sessions');
  await expect(page.getByTestId('auto-refresh').getByRole('switch')).toHaveAttribute('aria-checked', 'false');
  await page.goto('/activity-log');
  await expect(page.locator('#app[data-hydrated="true"]')).toBeAttached();
  const id = await ingest(request, `now-${Date.now()}`);
  await page.getByRole('button', { name: 'Refresh now' }).click();
  await expect(page.locator(`${rows}[data-event-id="${id}"]`)).toBeVisible();
});
