import { test, expect } from '@playwright/test';
import * as fs from 'fs';
import { openHydrated, signIn, users } from './helpers';

const rows = 'tbody tr[data-session-id]';
const adminEmail = `${users.admin.username}@auditdeck.example`;

test('an admin sees their own page loads recorded, and Hide Me removes them', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await signIn(page, 'admin');
  // A page load (signing in lands through a client-side navigation).
  await openHydrated(page, '/activity-log?size=50');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin Sessions' }).click();
  await expect(page).toHaveURL(/\/admin-sessions$/);
  await expect(page.getByRole('heading', { name: 'Admin Sessions', level: 1 })).toBeVisible();
  for (const header of ['Date', 'Admin', 'IP address', 'URL', 'Type', 'Method', 'Status', 'Duration']) {
    await expect(page.getByRole('columnheader', { name: header, exact: true })).toBeVisible();
  }
  // That page load is a WEB GET by this admin.
  const mine = page.locator(rows).filter({ hasText: '/activity-log?size=50' }).filter({ hasText: adminEmail });
  // Server-function calls made by this page are API requests.
  const call = page.locator(rows).filter({ hasText: '/api/list_admin_sessions' }).filter({ hasText: adminEmail });
  // Records are stored in the background, moments after the request.
  await expect(async () => {
    await page.getByRole('button', { name: 'Refresh now' }).click();
    await expect(mine.first()).toBeVisible({ timeout: 1_000 });
    await expect(call.first()).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 10_000 });
  await expect(call.first().locator('.badge.kind-api')).toHaveText('API');
  await expect(call.first().locator('.badge.method-post')).toHaveText('POST');
  await expect(mine.first()).toContainText(users.admin.name);
  await expect(mine.first().locator('.badge.kind-web')).toHaveText('WEB');
  await expect(mine.first().locator('.badge.method-get')).toHaveText('GET');
  await expect(mine.first().locator('.status')).toHaveText('200');

  await page.getByLabel('Hide Me').check();
  await expect(page).toHaveURL(/[?&]hide_me=1\b/);
  await expect(page.getByLabel('Hide Me')).toBeChecked();
  await expect(page.locator(rows).first()).toBeVisible();
  await expect(page.locator('tbody')).not.toContainText(adminEmail);

  // The view is in the address: a reload shows the same.
  await page.reload();
  await expect(page.getByLabel('Hide Me')).toBeChecked();
  await expect(page.locator(rows).first()).toBeVisible();
  await expect(page.locator('tbody')).not.toContainText(adminEmail);
  // The page, its auto-refresh control included, runs under the CSP.
  expect(errors).toEqual([]);
});

test('type, method and search filter the requests', async ({ page }) => {
  await signIn(page, 'admin', '/admin-sessions');
  await page.getByLabel('Type').selectOption('API');
  await expect(page).toHaveURL(/[?&]type=API\b/);
  await expect(page.locator(rows).first()).toBeVisible();
  await expect(page.locator(`${rows} .badge.kind-web`)).toHaveCount(0);

  await page.getByLabel('Method').selectOption('POST');
  await expect(page).toHaveURL(/[?&]method=POST\b/);
  await expect(page.locator(rows).first()).toBeVisible();
  // The rows of the view before stay until the new ones arrive: wait for them.
  await expect
    .poll(async () => {
      const methods = await page.locator(`${rows} .badge[class*="method-"]`).allInnerTexts();
      return methods.length > 0 && methods.every((m) => m.trim() === 'POST');
    })
    .toBe(true);

  await page.getByRole('link', { name: 'Clear filters' }).click();
  await page.getByRole('searchbox', { name: 'Search' }).fill('settings/users');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/[?&]q=settings%2Fusers\b/);
  await expect(page.locator(rows).first()).toBeVisible();
  await expect
    .poll(async () => {
      const urls = await page.locator(`${rows} .url-cell`).allInnerTexts();
      return urls.length > 0 && urls.every((u) => u.includes('/settings/users'));
    })
    .toBe(true);

  // A word too short for the index is named, and shows no rows.
  await page.getByRole('searchbox', { name: 'Search' }).fill('settings ad');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByRole('alert')).toContainText('search words need at least 3 characters ("ad" has fewer)');
  await expect(page.locator(rows)).toHaveCount(0);
  // The search box keeps the words, to be mended rather than typed again.
  await expect(page.getByRole('searchbox', { name: 'Search' })).toHaveValue('settings ad');
});

test('viewers have no Admin Sessions and are refused by the server', async ({ page }) => {
  await signIn(page, 'viewer');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin Sessions' })).toHaveCount(0);
  await openHydrated(page, '/admin-sessions');
  await expect(page.getByRole('alert')).toContainText('needs the admin role');
  await expect(page.locator(rows)).toHaveCount(0);
});

test('a malformed filter in the address is named', async ({ page }) => {
  await signIn(page, 'admin', '/admin-sessions?type=CLI');
  await expect(page.getByRole('alert')).toContainText('type: "CLI" is not a request type');
});

test('requests are selected with the same checkboxes and export as CSV', async ({ page }) => {
  await signIn(page, 'admin', '/admin-sessions?type=WEB');
  const boxes = page.locator(`${rows} input[type=checkbox]`);
  await boxes.nth(1).check();
  await boxes.nth(3).click({ modifiers: ['Shift'] });
  await expect(page.getByTestId('selection-count')).toHaveText('3 selected');
  const ids = await page
    .locator(rows)
    .evaluateAll((trs) => trs.slice(1, 4).map((tr) => Number(tr.getAttribute('data-session-id'))));
  await page.getByTestId('bulk-bar').locator('summary', { hasText: 'Export' }).click();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'CSV', exact: true }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^auditdeck-admin-sessions-.*\.csv$/);
  const text = fs.readFileSync((await download.path())!, 'utf8').replace(/^\uFEFF/, '');
  const lines = text.trim().split(/\r?\n/);
  expect(lines[0]).toBe('id,occurred_at,user_id,user_name,user_email,ip,url,type,method,status,duration_us');
  expect(lines.slice(1).map((l) => Number(l.split(',')[0]))).toEqual(ids);
  expect(lines.slice(1).every((l) => l.split(',')[7] === 'WEB')).toBe(true);
  // Paging keeps the selection; a new filter clears it.
  await page.getByRole('link', { name: 'Next page' }).click();
  await expect(page.getByTestId('selection-count')).toHaveText('3 selected');
  await page.getByLabel('Method').selectOption('GET');
  await expect(page.getByText('Selection cleared: the filters changed.')).toBeVisible();
});

/** What a row sorts by in each column, as a comparable value. */
function ipKey(ip: string): string {
  if (ip === '') return '';
  if (ip.includes('.')) {
    // IPv4 mapped into IPv6: ::ffff:a.b.c.d
    const v4 = ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');
    return '00000000000000000000ffff' + v4;
  }
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.padStart(4, '0')).join('');
}

function durationMicros(text: string): number {
  const [n, unit] = text.trim().split(/\s+/);
  return Number(n) * ({ 'µs': 1, ms: 1_000, s: 1_000_000 } as Record<string, number>)[unit];
}

const columns: { header: string; cell: string; key: (text: string) => string | number }[] = [
  { header: 'Date', cell: 'td:nth-child(2) time', key: (t) => t },
  { header: 'Admin', cell: 'td:nth-child(3) .initiator', key: (t) => t },
  { header: 'IP address', cell: 'td:nth-child(4)', key: (t) => ipKey(t.trim()) },
  { header: 'URL', cell: 'td:nth-child(5)', key: (t) => t },
  { header: 'Type', cell: 'td:nth-child(6)', key: (t) => t },
  { header: 'Method', cell: 'td:nth-child(7)', key: (t) => t },
  { header: 'Status', cell: 'td:nth-child(8)', key: (t) => Number(t) },
  { header: 'Duration', cell: 'td:nth-child(9)', key: durationMicros },
];

function inOrder(values: (string | number)[], descending: boolean): boolean {
  // Code-point order, as the server sorts text (by its bytes).
  const cmp = (a: string | number, b: string | number) =>
    typeof a === 'number' ? (a as number) - (b as number) : a < b ? -1 : a > b ? 1 : 0;
  return values.every((v, i) => i === 0 || (descending ? cmp(values[i - 1], v) >= 0 : cmp(values[i - 1], v) <= 0));
}

test('each column sorts both ways, and paging keeps the order', async ({ page }) => {
  test.setTimeout(120_000);
  // Up to an hour ago: the demo's requests, none that the tests are making
  // now (those would join the first pages between two reads).
  const hourAgo = new Date(Date.now() - 3_600_000).toISOString().slice(0, 16) + 'Z';
  await signIn(page, 'admin', `/admin-sessions?size=25&to=${hourAgo}`);
  await expect(page.locator(rows)).toHaveCount(25);
  const pager = page.getByRole('navigation', { name: 'Pagination' });
  for (const column of columns) {
    const header = page.getByRole('columnheader', { name: column.header, exact: true });
    // Date starts newest first (so its first click is oldest first),
    // Duration slowest first, the others A to Z; a second click flips.
    const natural = column.header === 'Duration' ? 'descending' : 'ascending';
    const flipped = natural === 'ascending' ? 'descending' : 'ascending';
    for (const expected of column.header === 'Date' ? ['ascending', 'descending'] : [natural, flipped]) {
      await header.getByRole('link').click();
      // The header and the rows are drawn together: once it shows the
      // direction, the rows are that view's.
      await expect(header).toHaveAttribute('aria-sort', expected);
      const descending = expected === 'descending';
      const what = `${column.header} ${expected}`;
      const read = async () => {
        const texts = await page
          .locator(`${rows} ${column.cell}`)
          .evaluateAll((cells) => cells.map((c) => (c.getAttribute('datetime') ?? c.textContent ?? '').trim()));
        return texts.map(column.key);
      };
      const first = await read();
      expect(first.length, `${what}: a full first page`).toBe(25);
      expect(inOrder(first, descending), `${what}: page 1 in order`).toBe(true);
      await pager.getByRole('link', { name: 'Next page' }).click();
      await expect(pager.getByLabel('Page 2')).toBeVisible();
      const second = await read();
      expect(second.length, `${what}: a second page`).toBeGreaterThan(0);
      expect(inOrder([...first, ...second], descending), `${what}: pages 1 and 2 in one order`).toBe(true);
      await pager.getByRole('link', { name: 'Previous page' }).click();
      await expect(pager.getByLabel('Page 1')).toBeVisible();
      expect(await read(), `${what}: back to the same first page`).toEqual(first);
    }
  }
});
