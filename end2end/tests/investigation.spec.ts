import { test, expect, Page, APIRequestContext } from '@playwright/test';
import { markWindow, openHydrated, rowIds, signIn, windowIsMarked } from './helpers';

const rows = 'tbody tr[data-event-id]';
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** The browser runs in this machine's zone; the tests compute days in it too. */
function dayName(d: Date): string {
  return `${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()}`;
}
function ddmmyyyy(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getDate())}-${two(d.getMonth() + 1)}-${d.getFullYear()}`;
}
function daysAgo(n: number, from: Date = new Date()): Date {
  const d = new Date(from);
  d.setHours(12, 0, 0, 0);
  d.setDate(d.getDate() - n);
  return d;
}

async function rowTimes(page: Page): Promise<number[]> {
  return page
    .locator(`${rows} time`)
    .evaluateAll((ts) => ts.map((t) => Date.parse(t.getAttribute('datetime') ?? '')));
}

async function columnTexts(page: Page, column: number): Promise<string[]> {
  return page.locator(`${rows} td:nth-child(${column})`).allInnerTexts();
}

async function ingest(request: APIRequestContext, events: object[]): Promise<number[]> {
  const response = await request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${process.env.E2E_API_KEY}` },
    data: events,
  });
  expect(response.status()).toBe(201);
  return (await response.json()).ids;
}

const picker = (page: Page) => page.locator('#range-picker-button');
const popover = (page: Page) => page.getByRole('dialog', { name: 'Choose a date range' });

test.beforeEach(async ({ page }) => {
  await signIn(page, 'viewer');
});

test('a preset in the range picker filters to the last 7 days', async ({ page }) => {
  await openHydrated(page, '/activity-log');
  await expect(picker(page)).toHaveText('Any time');
  await picker(page).click();
  await popover(page).getByRole('button', { name: 'Last 7 days' }).click();
  await expect(popover(page).getByRole('button', { name: 'Last 7 days' })).toHaveAttribute('aria-pressed', 'true');
  await popover(page).getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/[?&]range=7d\b/);
  await expect(picker(page)).toHaveText('Last 7 days');
  await expect(popover(page)).toHaveCount(0);
  const weekAgo = Date.now() - 7 * 86_400_000 - 60_000;
  await expect
    .poll(async () => {
      const times = await rowTimes(page);
      return times.length > 0 && times.every((t) => t >= weekAgo);
    })
    .toBe(true);
});

test('a custom range picked with the mouse, in either order, with hover preview', async ({ page }) => {
  await openHydrated(page, '/activity-log');
  await picker(page).click();
  const later = daysAgo(20);
  const earlier = daysAgo(23);
  // Go back until the later day is on screen.
  while (!(await popover(page).getByRole('button', { name: dayName(later), exact: true }).isVisible())) {
    await popover(page).getByRole('button', { name: 'Previous month' }).click();
  }
  while (!(await popover(page).getByRole('button', { name: dayName(earlier), exact: true }).isVisible())) {
    await popover(page).getByRole('button', { name: 'Previous month' }).click();
  }
  await popover(page).getByRole('button', { name: dayName(later), exact: true }).click();
  // Hovering shows the range that a click would choose.
  await popover(page).getByRole('button', { name: dayName(earlier), exact: true }).hover();
  await expect(popover(page).locator('td[aria-selected="true"]')).toHaveCount(4);
  await popover(page).getByRole('button', { name: dayName(earlier), exact: true }).click();
  await expect(popover(page).getByLabel('Start date')).toHaveValue(ddmmyyyy(earlier));
  await expect(popover(page).getByLabel('End date')).toHaveValue(ddmmyyyy(later));
  await popover(page).getByLabel('Start time').fill('06:30');
  await popover(page).getByRole('button', { name: 'Apply' }).click();
  await expect(picker(page)).toHaveText(`${ddmmyyyy(earlier)} 06:30 - ${ddmmyyyy(later)} 23:59`);
  await expect(page).toHaveURL(/[?&]from=[^&]+&to=/);
  const start = new Date(earlier);
  start.setHours(6, 30, 0, 0);
  const end = new Date(later);
  end.setHours(23, 59, 59, 999);
  await expect
    .poll(async () => {
      const times = await rowTimes(page);
      return times.length > 0 && times.every((t) => t >= start.getTime() && t <= end.getTime());
    })
    .toBe(true);
});

test('the range picker works from the keyboard', async ({ page }) => {
  // The browser's clock is set to the second day of a month, so that the
  // walk below leaves the month it starts in (the grid draws its months anew
  // under the keys, and no key may be lost meanwhile).
  const now = new Date(2026, 11, 2, 10, 0, 0);
  await page.clock.setFixedTime(now);
  await openHydrated(page, '/activity-log');
  await picker(page).focus();
  await page.keyboard.press('Enter');
  const today = daysAgo(0, now);
  await expect(popover(page).getByRole('button', { name: dayName(today), exact: true })).toBeFocused();
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowUp');
  const start = daysAgo(9, now);
  await expect(popover(page).getByRole('button', { name: dayName(start), exact: true })).toBeFocused();
  await page.keyboard.press('Enter');
  await page.keyboard.press('ArrowDown');
  const end = daysAgo(2, now);
  await expect(popover(page).getByRole('button', { name: dayName(end), exact: true })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(popover(page).getByLabel('Start date')).toHaveValue(ddmmyyyy(start));
  await expect(popover(page).getByLabel('End date')).toHaveValue(ddmmyyyy(end));
  await popover(page).getByRole('button', { name: 'Apply' }).focus();
  await page.keyboard.press('Enter');
  await expect(picker(page)).toHaveText(`${ddmmyyyy(start)} 00:00 - ${ddmmyyyy(end)} 23:59`);
  await expect(picker(page)).toBeFocused();
  // Escape closes without changing anything.
  const url = page.url();
  await page.keyboard.press('Enter');
  await expect(popover(page)).toBeVisible();
  await page.keyboard.press('PageUp');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Escape');
  await expect(popover(page)).toHaveCount(0);
  expect(page.url()).toBe(url);
  await expect(picker(page)).toHaveText(`${ddmmyyyy(start)} 00:00 - ${ddmmyyyy(end)} 23:59`);

  // A preset, from the keyboard only: Shift+Tab back to it, Enter, Tab on to Apply.
  await expect(picker(page)).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(popover(page)).toBeVisible();
  const focusedText = () => page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
  for (let i = 0; i < 20 && (await focusedText()) !== 'Last 24 hours'; i++) {
    await page.keyboard.press('Shift+Tab');
  }
  expect(await focusedText()).toBe('Last 24 hours');
  await page.keyboard.press('Enter');
  for (let i = 0; i < 30 && (await focusedText()) !== 'Apply'; i++) {
    await page.keyboard.press('Tab');
  }
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/[?&]range=24h\b/);
  await expect(picker(page)).toHaveText('Last 24 hours');
});

test('a typed date that does not exist, or an end before the start, is refused', async ({ page }) => {
  await openHydrated(page, '/activity-log?range=24h');
  const before = await rowIds(page);
  await picker(page).click();
  await popover(page).getByLabel('Start date').fill('31-02-2026');
  await popover(page).getByLabel('End date').fill('01-03-2026');
  await popover(page).getByRole('button', { name: 'Apply' }).click();
  await expect(popover(page).getByRole('alert')).toContainText('"31-02-2026" is not a date in the calendar');
  await popover(page).getByLabel('Start date').fill('05-03-2026');
  await popover(page).getByRole('button', { name: 'Apply' }).click();
  await expect(popover(page).getByRole('alert')).toHaveText('The end is before the start');
  await popover(page).getByRole('button', { name: 'Cancel' }).click();
  // The previous range stays.
  await expect(picker(page)).toHaveText('Last 24 hours');
  await expect(page).toHaveURL(/[?&]range=24h$/);
  expect(await rowIds(page)).toEqual(before);
  // A bad date typed into the address is refused with a message too.
  await openHydrated(page, '/activity-log?from=2026-02-31T00:00Z');
  await expect(page.getByRole('alert')).toContainText('from: "2026-02-31T00:00Z" is not a time');
});

test('filters and keyword search combine, and matches are highlighted', async ({ page }) => {
  await openHydrated(page, '/activity-log');
  await markWindow(page);
  await page.getByText('Any action').click();
  await page.getByRole('checkbox', { name: 'UPDATE' }).check();
  await expect(page).toHaveURL(/[?&]action=UPDATE\b/);
  await page.getByLabel('Table').selectOption('invoices');
  await expect(page).toHaveURL(/[?&]table=invoices\b/);
  await expect(page).toHaveURL(/action=UPDATE/);
  // The URL changes first; the rows follow when they arrive.
  await expect.poll(async () => [...new Set(await columnTexts(page, 5))]).toEqual(['UPDATE']);
  await expect.poll(async () => [...new Set(await columnTexts(page, 6))]).toEqual(['invoices']);

  await page.getByLabel('Search').fill('invoice');
  await page.getByLabel('Search').press('Enter');
  await expect(page).toHaveURL(/[?&]q=invoice\b/);
  await expect(page.locator(`${rows} mark`).first()).toBeVisible();
  const marks = await page.locator(`${rows} mark`).allInnerTexts();
  expect(marks.every((m) => m.toLowerCase() === 'invoice')).toBe(true);
  await expect.poll(async () => [...new Set(await columnTexts(page, 5))]).toEqual(['UPDATE']);
  await expect(page.getByTestId('result-count')).toHaveText(/^\d[\d,]* events?$/);

  // A user from the list, then a CIDR range.
  await page.getByRole('link', { name: 'Clear filters' }).click();
  await expect(page).toHaveURL(/\/activity-log$/);
  const user = page.getByLabel('User', { exact: true });
  const option = await page.locator('#initiator-options option').evaluateAll((os) =>
    os.map((o) => (o as HTMLOptionElement).value).find((v) => v.startsWith('Ada Kowalski')),
  );
  expect(option).toBeTruthy();
  await user.fill(option!);
  await user.press('Enter');
  await expect(page).toHaveURL(/[?&]user=user:1\b/);
  await expect
    .poll(async () => [...new Set(await page.locator(`${rows} .initiator`).allInnerTexts())])
    .toEqual(['Ada Kowalski']);

  await page.getByRole('link', { name: 'Clear filters' }).click();
  await expect(page).toHaveURL(/\/activity-log$/);
  await page.getByLabel('IP or CIDR').fill('10.0.0.0/8');
  await page.getByLabel('IP or CIDR').press('Enter');
  await expect(page).toHaveURL(/[?&]ip=10\.0\.0\.0%2F8\b/);
  await expect
    .poll(async () => {
      const ips = await columnTexts(page, 3);
      return ips.length > 0 && ips.every((ip) => ip.startsWith('10.'));
    })
    .toBe(true);
  // A malformed range is refused in place.
  await page.getByLabel('IP or CIDR').fill('300.1.2.3/40');
  await page.getByLabel('IP or CIDR').press('Enter');
  await expect(page.getByRole('alert')).toContainText('is not an IP address or CIDR range');
  await expect(page).toHaveURL(/[?&]ip=10\.0\.0\.0%2F8$/);
  expect(await windowIsMarked(page)).toBe(true);
});

test('clicking a column header sorts, again for descending', async ({ page }) => {
  await openHydrated(page, '/activity-log?size=100');
  await page.getByRole('columnheader', { name: 'Action', exact: true }).getByRole('link').click();
  await expect(page).toHaveURL(/[?&]sort=action\b/);
  await expect(page.getByRole('columnheader', { name: 'Action', exact: true })).toHaveAttribute('aria-sort', 'ascending');
  let actions = await columnTexts(page, 5);
  expect(actions).toEqual([...actions].sort());
  await page.getByRole('columnheader', { name: 'Action', exact: true }).getByRole('link').click();
  await expect(page).toHaveURL(/[?&]dir=desc\b/);
  await expect(page.getByRole('columnheader', { name: 'Action', exact: true })).toHaveAttribute('aria-sort', 'descending');
  actions = await columnTexts(page, 5);
  expect(actions).toEqual([...actions].sort().reverse());
  // The next page continues the same order.
  const lastOnFirst = actions[actions.length - 1];
  const firstId = String((await rowIds(page))[0]);
  await page.getByRole('link', { name: 'Next page' }).click();
  await expect(page).toHaveURL(/[?&]after=\d+/);
  await expect(page.locator(rows).first()).not.toHaveAttribute('data-event-id', firstId);
  const next = await columnTexts(page, 5);
  expect(next[0] <= lastOnFirst).toBe(true);
  // An unknown column is refused by the server's whitelist.
  await openHydrated(page, '/activity-log?sort=password_hash');
  await expect(page.getByRole('alert')).toContainText('sort: "password_hash" is not a column to sort by');
});

test('View details shows every field and follows the record history', async ({ page, request }) => {
  const key = `INV-${Date.now()}`;
  const ids = await ingest(request, [
    { action: 'CREATE', table: 'invoices', primary_key: key, description: `Created ${key}`, after: { total: 10 } },
    { action: 'UPDATE', table: 'invoices', primary_key: key, description: `Raised ${key}`, before: { total: 10 }, after: { total: 12 } },
    {
      action: 'UPDATE', table: 'invoices', primary_key: key, description: `Approved ${key}`,
      initiator: { kind: 'user', id: 'u-77', name: 'Mira Quinn', email: 'mira@example.com', role: 'finance' },
      ip: '198.51.100.23', user_agent: 'Mozilla/5.0 (e2e)', request_id: 'req-e2e-1', session_id: 'sess-e2e',
    },
  ]);
  await openHydrated(page, `/activity-log?q=${encodeURIComponent(`"${key}"`)}`);
  await expect(page.locator(rows)).toHaveCount(3);
  const viewButton = page.getByRole('button', { name: `View event ${ids[2]}` });
  await viewButton.click();
  const dialog = page.getByRole('dialog', { name: `Event ${ids[2]}` });
  await expect(dialog).toBeVisible();
  for (const text of ['Mira Quinn', 'mira@example.com', 'finance', '198.51.100.23', 'Mozilla/5.0 (e2e)', 'req-e2e-1', 'sess-e2e', 'end2end']) {
    await expect(dialog.locator('.detail-fields')).toContainText(text);
  }
  const history = dialog.locator('.history-item');
  await expect(history).toHaveCount(3);
  await expect(history.first()).toHaveAttribute('aria-current', 'true');
  await history.nth(2).click();
  await expect(page.getByRole('dialog', { name: `Event ${ids[0]}` })).toBeVisible();
  await expect(page.getByRole('dialog').locator('.detail-fields')).toContainText(`Created ${key}`);
  await expect(page.getByRole('dialog').locator('.history-item').nth(2)).toHaveAttribute('aria-current', 'true');
  await page.keyboard.press('Escape');
  await expect(page.getByRole('dialog')).toHaveCount(0);
});

test('View Difference marks a changed nested field, keeps focus inside, and returns it', async ({ page, request }) => {
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  const key = `CUST-${Date.now()}`;
  const [id] = await ingest(request, [
    {
      action: 'UPDATE', table: 'customers', primary_key: key, description: `Moved ${key}`,
      before: { name: 'Ann', address: { city: 'Oslo', zip: '0150' }, tags: ['a'], notes: 'line one\nline two\n' },
      after: { name: 'Ann', address: { city: 'Bergen', zip: '0150' }, tags: ['a', 'b'], notes: 'line one\nline 2\n', vip: true },
    },
  ]);
  await openHydrated(page, `/activity-log?q=${key}`);
  const button = page.getByRole('button', { name: `View Difference of event ${id}` });
  await button.click();
  const dialog = page.getByRole('dialog', { name: `Difference — event ${id}` });
  await expect(dialog).toBeVisible();
  const city = dialog.locator('.diff-row[data-key="city"]');
  await expect(city).toHaveClass(/changed/);
  await expect(city.locator('.diff-symbol')).toHaveText('~');
  await expect(city.locator('.before .value')).toHaveText('Oslo');
  await expect(city.locator('.after .value')).toHaveText('Bergen');
  await expect(dialog.locator('.diff-branch[data-key="address"]')).toHaveClass(/changed/);
  await expect(dialog.locator('.diff-row[data-key="zip"]')).toHaveClass(/same/);
  await expect(dialog.locator('.diff-row[data-key="vip"]')).toHaveClass(/added/);
  await expect(dialog.locator('.diff-row[data-key="[1]"]')).toHaveClass(/added/);
  await expect(dialog.locator('.diff-row[data-key="notes"] .after li.added')).toHaveText(/line 2/);
  // Only changes hides the unchanged fields.
  await dialog.getByLabel('Only changes').check();
  await expect(dialog.locator('.diff-row[data-key="zip"]')).toBeHidden();
  await expect(dialog.locator('.diff-row[data-key="name"]')).toBeHidden();
  await expect(city).toBeVisible();
  // Tab cycles inside the dialog.
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press('Tab');
    expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  }
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(button).toBeFocused();
  // Escape closes it too.
  await button.click();
  await expect(page.getByRole('dialog')).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(page.getByRole('dialog')).toHaveCount(0);
  await expect(button).toBeFocused();
  // Nothing broke the page's Content-Security-Policy on the way.
  expect(errors).toEqual([]);
});

test('reload and Back show exactly the same view', async ({ page }) => {
  await openHydrated(page, '/activity-log?size=10');
  await page.getByText('Any action').click();
  await page.getByRole('checkbox', { name: 'DELETE' }).check();
  await expect(page).toHaveURL(/action=DELETE/);
  await page.getByLabel('Search').fill('order');
  await page.getByLabel('Search').press('Enter');
  await expect(page).toHaveURL(/q=order/);
  await page.getByRole('columnheader', { name: 'Initiator', exact: true }).getByRole('link').click();
  await expect(page).toHaveURL(/sort=user/);
  await page.getByRole('link', { name: 'Next page' }).click();
  await expect(page).toHaveURL(/page=2/);
  const url = page.url();
  const ids = await rowIds(page);
  expect(ids.length).toBeGreaterThan(0);

  await page.reload();
  await expect(page).toHaveURL(url);
  expect(await rowIds(page)).toEqual(ids);
  await expect(page.getByLabel('Search')).toHaveValue('order');
  await expect(page.locator('.multi-value')).toHaveText('DELETE');
  await expect(page.getByRole('columnheader', { name: 'Initiator', exact: true })).toHaveAttribute('aria-sort', 'ascending');

  await page.goBack();
  await expect(page).toHaveURL(/sort=user/);
  await expect(page).not.toHaveURL(/page=2/);
  await page.goBack();
  await expect(page).not.toHaveURL(/sort=/);
  await expect(page.getByLabel('Search')).toHaveValue('order');
  await page.goForward();
  await expect(page).toHaveURL(/sort=user/);
  await expect(page.getByRole('columnheader', { name: 'Initiator', exact: true })).toHaveAttribute('aria-sort', 'ascending');
});

test.describe('in another time zone', () => {
  test.use({ timezoneId: 'Asia/Kolkata' });

  test('times show in the browser zone, and the UTC switch is remembered', async ({ page }) => {
    await openHydrated(page, '/activity-log');
    const first = page.locator(rows).first().locator('time');
    const utc = new Date((await first.getAttribute('datetime'))!);
    const local = new Date(utc.getTime() + 330 * 60_000);
    const two = (n: number) => String(n).padStart(2, '0');
    const clock = (d: Date) => `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
    await expect(first.locator('.clock')).toHaveText(clock(local));
    const toggle = page.getByRole('button', { name: 'UTC' });
    await expect(toggle).toHaveAttribute('aria-pressed', 'false');
    await toggle.click();
    await expect(toggle).toHaveAttribute('aria-pressed', 'true');
    await expect(first.locator('.clock')).toHaveText(clock(utc));
    await page.reload();
    await expect(page.getByRole('button', { name: 'UTC' })).toHaveAttribute('aria-pressed', 'true');
    await expect(page.locator(rows).first().locator('time .clock')).toHaveText(clock(utc));
    await page.getByRole('button', { name: 'UTC' }).click();
    await expect(page.locator(rows).first().locator('time .clock')).toHaveText(clock(local));
  });
});
