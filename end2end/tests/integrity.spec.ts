import { expect, Page, test } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { openHydrated, signIn } from './helpers';

/** The database file the server under test uses (scripts/test.sh sets it). */
function databaseFile(): string {
  const url = process.env.AUDITDECK_DATABASE_URL;
  if (!url?.startsWith('sqlite://')) throw new Error('scripts/test.sh exports AUDITDECK_DATABASE_URL');
  return url.slice('sqlite://'.length).split('?')[0];
}

/** Runs SQL on the database file behind the server's back (Python's sqlite3). */
function sql(statement: string, ...params: (string | number)[]): string {
  const script = [
    'import json, sqlite3, sys',
    'c = sqlite3.connect(sys.argv[1], timeout=10)',
    'rows = c.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()',
    'c.commit()',
    'print(json.dumps(rows))',
  ].join('\n');
  return execFileSync('python3', ['-c', script, databaseFile(), statement, JSON.stringify(params)], {
    encoding: 'utf8',
  });
}

/** Starts a full verification and waits for its result (`expected`) to show. */
async function verifyWholeChain(page: Page, expected: 'Intact' | 'Broken') {
  const before = await page.locator('table.verifications tbody tr').count();
  await page.getByTestId('verify-full').click();
  // A new row in the recent verifications, then the result of that walk.
  await expect(page.locator('table.verifications tbody tr')).toHaveCount(before + 1);
  await expect(page.getByTestId('verify-progress')).toHaveCount(0, { timeout: 20_000 });
  await expect(page.getByTestId('verify-result')).toContainText(expected);
}

test('an admin verifies the chain, sees it intact, then sees a tampered row pinpointed', async ({ page }) => {
  await signIn(page, 'admin', '/integrity');
  await expect(page.getByRole('heading', { name: 'Integrity' })).toBeVisible();
  const badge = page.getByTestId('integrity-badge');
  await expect(badge).toBeVisible();

  await verifyWholeChain(page, 'Intact');
  await expect(badge).toContainText('Chain intact');

  // Someone edits one event's description directly in the database.
  const id = JSON.parse(sql('SELECT id, description FROM events ORDER BY id LIMIT 1 OFFSET 99'))[0];
  const [eventId, original] = id as [number, string];
  sql('UPDATE events SET description = ? WHERE id = ?', 'nothing to see here', eventId);
  try {
    await verifyWholeChain(page, 'Broken');
    const problem = page.getByTestId('problems').locator(`li[data-entry="${eventId}"]`);
    await expect(problem).toContainText(`Event #${eventId}`);
    await expect(problem).toContainText('changed: description');
    await expect(badge).toContainText('Chain broken');

    // The badge says so on every page, and the verification is in the log.
    await openHydrated(page, '/activity-log?action=VERIFY');
    await expect(page.getByTestId('integrity-badge')).toContainText('Chain broken');
    await expect(page.locator('tbody tr[data-event-id]').first()).toContainText('BROKEN');
  } finally {
    // Put the original text back: the content hashes match again.
    sql('UPDATE events SET description = ? WHERE id = ?', original, eventId);
  }
  await openHydrated(page, '/integrity');
  await verifyWholeChain(page, 'Intact');
  await expect(page.getByTestId('integrity-badge')).toContainText('Chain intact');
});

test('viewers see the badge and the page but cannot start a verification', async ({ page }) => {
  await signIn(page, 'viewer', '/integrity');
  await expect(page.getByRole('heading', { name: 'Integrity' })).toBeVisible();
  await expect(page.getByTestId('integrity-badge')).toBeVisible();
  await expect(page.getByTestId('verify-full')).toHaveCount(0);
  await expect(page.getByRole('link', { name: /Download checkpoints/ })).toHaveCount(0);
  const status = await page.request.post('/api/start_verification', {
    form: { mode: 'full' },
    headers: { Accept: 'application/json' },
  });
  expect(status.status()).toBe(403);
});

test('an admin sets a retention policy and a legal hold that stops deletion', async ({ page }) => {
  await signIn(page, 'admin', '/settings/retention');
  await expect(page.getByRole('heading', { name: 'Retention' })).toBeVisible();
  await expect(page.getByTestId('policy-source')).toContainText('Leptos.toml');

  // A bad number is named and nothing is saved.
  await page.getByRole('radio', { name: 'For days' }).check();
  await page.getByLabel('Days to keep events').fill('0');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('alert')).toContainText('at least 1 day');

  // Keep forever, except LOGIN for 400 days; and a legal hold.
  await page.getByRole('radio', { name: 'Forever' }).check();
  await page.getByRole('button', { name: 'Add a rule' }).click();
  await page.getByLabel('Action', { exact: true }).fill('LOGIN');
  await page.getByLabel('Days to keep, or forever').fill('400');
  await page.getByTestId('legal-hold').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByText('Saved.')).toBeVisible();
  await expect(page.getByTestId('policy-source')).toContainText('Set in Settings by e2e-admin');
  await expect(page.getByText('In force: keep forever; LOGIN 400 days.')).toBeVisible();
  await expect(page.locator('.badge.legal-hold')).toBeVisible();

  // Under the hold, the server refuses to plan a deletion.
  const plan = await page.request.post('/api/plan_deletion', {
    data: { selection: { Ids: [1] } },
    headers: { Accept: 'application/json' },
  });
  expect(plan.status()).toBe(409);
  expect(await plan.text()).toContain('legal hold');

  // Lift it and return to the file's policy: deletion may be planned again.
  await page.getByTestId('legal-hold').uncheck();
  await page.getByRole('button', { name: "Use Leptos.toml's policy" }).click();
  await expect(page.getByTestId('policy-source')).toContainText('Leptos.toml');
  await expect(page.locator('.badge.legal-hold')).toHaveCount(0);
  const again = await page.request.post('/api/plan_deletion', {
    data: { selection: { Ids: [1] } },
    headers: { Accept: 'application/json' },
  });
  expect(again.status()).toBe(200);
});
