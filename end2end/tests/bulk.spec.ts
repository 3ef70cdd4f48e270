import { expect, test } from '@playwright/test';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import { openHydrated, resultCount, rowIds, signIn } from './helpers';

const rows = 'tbody tr[data-event-id]';

/** A PDF's text as poppler's pdftotext reads it (scripts/test.sh installs it). */
function pdfText(body: Buffer): string {
  return execFileSync('pdftotext', ['-layout', '-enc', 'UTF-8', '-', '-'], { input: body }).toString('utf8');
}

async function downloadOf(page: import('@playwright/test').Page, click: () => Promise<void>) {
  const [download] = await Promise.all([page.waitForEvent('download'), click()]);
  const path = await download.path();
  expect(path).toBeTruthy();
  return { name: download.suggestedFilename(), body: fs.readFileSync(path!) };
}

async function exportAs(page: import('@playwright/test').Page, menu: string, format: string) {
  await page.getByTestId('bulk-bar').locator('summary', { hasText: menu }).click();
  return downloadOf(page, () => page.getByRole('button', { name: format, exact: true }).click());
}

test('three selected rows export as CSV, exactly those rows', async ({ page }) => {
  await signIn(page, 'auditor', '/activity-log?action=UPDATE');
  await expect(page.locator(rows).first()).toBeVisible();
  const ids = await rowIds(page);
  const boxes = page.locator(`${rows} input[type=checkbox]`);
  await boxes.nth(0).check();
  // Shift-click selects the range from the last row clicked.
  await boxes.nth(2).click({ modifiers: ['Shift'] });
  await expect(page.getByTestId('selection-count')).toHaveText('3 selected');
  await expect(page.getByRole('checkbox', { name: 'Select all on this page' })).toHaveJSProperty('indeterminate', true);

  const { name, body } = await exportAs(page, 'Export', 'CSV');
  expect(name).toMatch(/^auditdeck-events-.*\.csv$/);
  const lines = body.toString('utf8').replace(/^\uFEFF/, '').trim().split(/\r?\n/);
  expect(lines[0]).toBe(
    'id,occurred_at,ip,initiator_kind,initiator_id,initiator_name,initiator_email,initiator_role,action,table,primary_key,description,before,after,user_agent,request_id,session_id',
  );
  expect(lines.slice(1).map((l) => Number(l.split(',')[0]))).toEqual(ids.slice(0, 3));
  await expect(page.getByTestId('export-progress')).toContainText('Exported 3 entries as CSV.');
  // A refresh keeps the selection and its rows.
  await page.getByRole('button', { name: 'Refresh now' }).click();
  await expect(page.getByTestId('auto-refresh').getByTestId('refresh-status')).not.toHaveText('Refreshing…');
  await expect(page.getByTestId('selection-count')).toHaveText('3 selected');
  await expect(boxes.nth(1)).toBeChecked();
  // The selection survives a page change and comes back with its rows.
  await page.getByRole('link', { name: 'Next page' }).click();
  await expect(page.getByTestId('selection-count')).toHaveText('3 selected');
  // Changing the filters clears it, with a note.
  await page.goto('/activity-log?action=UPDATE');
  await expect(page.locator('#app[data-hydrated="true"]')).toBeAttached();
  await page.locator(`${rows} input[type=checkbox]`).first().check();
  await page.getByRole('searchbox', { name: 'Search' }).fill('invoice');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByText('Selection cleared: the filters changed.')).toBeVisible();
  await expect(page.getByTestId('selection-count')).toHaveCount(0);
});

test('select all matching a filter and export JSON Lines', async ({ page }) => {
  await signIn(page, 'auditor', '/activity-log?action=LOGIN_FAILED&size=10');
  const count = await resultCount(page);
  expect(count).toBeGreaterThan(10);
  await page.getByRole('checkbox', { name: 'Select all on this page' }).check();
  await expect(page.getByTestId('selection-count')).toHaveText('10 selected');
  await page.getByRole('button', { name: `Select all ${count.toLocaleString('en-US')} entries that match this filter` }).click();
  await expect(page.getByTestId('selection-count')).toHaveText(`All ${count.toLocaleString('en-US')} matching entries selected`);

  const { name, body } = await exportAs(page, 'Export', 'JSON Lines');
  expect(name).toMatch(/\.jsonl$/);
  const events = body.toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(events).toHaveLength(count);
  expect(events.every((e) => e.action === 'LOGIN_FAILED' && typeof e.id === 'number')).toBe(true);
});

test('the whole filtered result exports as a PDF report with page numbers', async ({ page }) => {
  await signIn(page, 'admin', '/activity-log?action=LOGOUT');
  const count = await resultCount(page);
  const { name, body } = await exportAs(page, 'Export all matching', 'PDF');
  expect(name).toMatch(/\.pdf$/);
  const raw = body.toString('latin1');
  expect(raw.startsWith('%PDF-')).toBe(true);
  // 32 rows on the first page (under the title), 37 on each after.
  const expected = count <= 32 ? 1 : 1 + Math.ceil((count - 32) / 37);
  expect(raw.match(/\/Type \/Page\b(?!s)/g)?.length).toBe(expected);
  const text = pdfText(body);
  expect(text).toContain(`Page ${expected} of ${expected}`);
  expect(text).toContain('Auditdeck – Activity Log export');
  expect(text).toContain('filter action=LOGOUT');
});

test('a PDF of events written in six scripts prints them as written', async ({ page, request }) => {
  const words = ['Пароль изменён', 'Ο κωδικός άλλαξε', 'הסיסמה שונתה', 'تم تغيير كلمة المرور', '密码已更改', 'パスワード変更'];
  const tag = `scripts${Date.now()}`;
  const response = await request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${process.env.E2E_API_KEY}` },
    data: words.map((w) => ({
      action: 'UPDATE',
      table: 'accounts',
      initiator: { kind: 'user', id: 'u-scripts', name: 'Zoë Ångström' },
      description: `${tag} ${w}`,
    })),
  });
  expect(response.status()).toBe(201);
  await signIn(page, 'auditor', `/activity-log?q=${tag}`);
  await expect(page.locator(rows)).toHaveCount(words.length);
  const { body } = await exportAs(page, 'Export all matching', 'PDF');
  const text = pdfText(body);
  expect(text).not.toContain('?');
  expect(text).toContain('Zoë Ångström');
  for (const word of words.flatMap((w) => w.split(' '))) expect(text).toContain(word);
});

test('an admin deletes two rows: they are gone and the deletion is listed', async ({ page }) => {
  await signIn(page, 'admin', '/activity-log?action=CREATE');
  const ids = await rowIds(page);
  const [a, b] = [ids[1], ids[3]];
  await page.getByRole('checkbox', { name: `Select event ${a}` }).check();
  await page.getByRole('checkbox', { name: `Select event ${b}` }).check();
  await page.getByTestId('bulk-bar').getByRole('button', { name: 'Delete' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete 2 events?' });
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: 'Delete 2 events' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.getByText(/Deleted 2 events\. The deletion is event \d+/)).toBeVisible();
  await expect(page.locator(`${rows}[data-event-id="${a}"]`)).toHaveCount(0);
  await expect(page.locator(`${rows}[data-event-id="${b}"]`)).toHaveCount(0);

  await openHydrated(page, '/activity-log?action=DELETE');
  const top = page.locator(rows).first();
  await expect(top).toContainText(`Deleted 2 events from the log (ids ${Math.min(a, b)}, ${Math.max(a, b)})`);
  await expect(top).toContainText('Edna Admin');
});

test('an auditor has no Delete, and the server refuses the call', async ({ page }) => {
  await signIn(page, 'auditor');
  await page.locator(`${rows} input[type=checkbox]`).first().check();
  await expect(page.getByTestId('selection-count')).toHaveText('1 selected');
  await expect(page.getByTestId('bulk-bar').getByRole('button', { name: 'Delete' })).toHaveCount(0);
  const id = (await rowIds(page))[0];
  for (const endpoint of ['plan_deletion', 'delete_events']) {
    const response = await page.request.post(`/api/${endpoint}`, {
      data: { selection: { Ids: [id] }, plan: { count: 1, up_to_id: id } },
      headers: { 'Sec-Fetch-Site': 'same-origin' },
    });
    expect(response.status(), endpoint).toBe(403);
    expect(await response.text()).toContain('needs the admin role');
  }
  await page.reload();
  await expect(page.locator(`${rows}[data-event-id="${id}"]`)).toHaveCount(1);
});

test('a viewer sees no selection checkboxes and may not export', async ({ page }) => {
  await signIn(page, 'viewer');
  await expect(page.locator(`${rows}`).first()).toBeVisible();
  await expect(page.locator(`${rows} input[type=checkbox]`)).toHaveCount(0);
  const response = await page.request.post('/api/start_export', {
    data: { selection: { Filter: {} }, format: 'Csv' },
    headers: { 'Sec-Fetch-Site': 'same-origin' },
  });
  expect(response.status()).toBe(403);
});
