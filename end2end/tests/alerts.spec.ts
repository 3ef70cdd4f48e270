import { expect, test } from '@playwright/test';
import { openHydrated, signIn } from './helpers';

async function ingest(
  request: import('@playwright/test').APIRequestContext,
  events: { action: string; table: string; ip: string; description: string }[],
): Promise<number[]> {
  const response = await request.post('/api/v1/events', {
    data: events,
    headers: { Authorization: `Bearer ${process.env.E2E_API_KEY}` },
  });
  expect(response.status()).toBe(201);
  return (await response.json()).ids;
}

test('an admin adds a threshold rule, failed sign-ins fire one alert, and its link opens exactly those events', async ({ page, request }) => {
  test.setTimeout(60_000);
  const tag = `alerts_e2e_${Date.now()}`;
  await signIn(page, 'admin', '/settings/alerts');
  const form = page.locator('form.rule-form');
  await form.getByLabel('Name', { exact: true }).fill(`Failed sign-ins ${tag}`);
  await form.getByRole('combobox', { name: /^Kind/ }).selectOption('threshold');
  await form.getByRole('combobox', { name: /^Severity/ }).selectOption('critical');
  await form.getByLabel(/^Filter/).fill(`action=LOGIN_FAILED&table=${tag}`);
  await form.getByLabel('At least (events)').fill('3');
  await form.getByLabel('Window (minutes)').fill('5');
  await form.getByRole('combobox', { name: /^Group/ }).selectOption('ip');
  await form.getByRole('button', { name: 'Add rule' }).click();
  const row = page.locator(`tr[data-rule="Failed sign-ins ${tag}"]`);
  await expect(row.locator('.rule-summary')).toHaveText(
    `at least 3 events matching action=LOGIN_FAILED&table=${tag} within 5 min per IP`,
  );

  // A bad rule is refused with a message that names the field.
  await form.getByLabel('Name', { exact: true }).fill('Bad zone');
  await form.getByRole('combobox', { name: /^Kind/ }).selectOption('off_hours');
  await form.getByLabel('Time zone').fill('Mars/Base');
  await form.getByRole('button', { name: 'Add rule' }).click();
  await expect(page.getByRole('alert')).toContainText('zone: "Mars/Base" is not a time zone');
  await expect(page.locator('tr[data-rule="Bad zone"]')).toHaveCount(0);

  // Two failures from one address, three from another: one alert.
  const fail = (ip: string, i: number) => ({
    action: 'LOGIN_FAILED',
    table: tag,
    ip,
    description: `Failed sign-in ${i} from ${ip}`,
  });
  const ids = await ingest(request, [
    fail('198.51.100.7', 1),
    fail('203.0.113.9', 1),
    fail('198.51.100.7', 2),
    fail('198.51.100.7', 3),
    fail('203.0.113.9', 2),
  ]);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alerts', exact: true }).first().click();
  await expect(page).toHaveURL(/:\d+\/alerts$/);
  await expect(page.getByRole('heading', { name: 'Alerts', level: 1 })).toBeVisible();
  const alert = page.locator('table.alerts tbody tr').filter({ hasText: `Failed sign-ins ${tag}` });
  await expect(async () => {
    await page.reload();
    await expect(alert).toHaveCount(1, { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await expect(alert).toContainText('198.51.100.7');
  await expect(alert).toContainText('critical');
  await expect(alert.locator('td.num')).toHaveText('3');
  await expect(page.getByTestId('alerts-badge')).toBeVisible();

  // Its link opens the Activity Log on the three events that fired it.
  await alert.getByRole('link', { name: 'View events' }).click();
  await expect(page).toHaveURL(/\/activity-log\?/);
  const expected = [ids[3], ids[2], ids[0]];
  await expect(async () => {
    const shown = await page
      .locator('tbody tr[data-event-id]')
      .evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-event-id'))));
    expect(shown).toEqual(expected);
  }).toPass({ timeout: 10_000 });

  // Acknowledged: it leaves the open list and the acknowledgement is audited.
  await page.goBack();
  await openHydrated(page, '/alerts');
  await alert.getByRole('button', { name: 'Acknowledge' }).click();
  await expect(alert).toHaveCount(0);
  await page.getByRole('button', { name: 'All', exact: true }).click();
  await expect(alert.locator('.badge.alert-acknowledged')).toHaveText('acknowledged');
  await expect(alert).toContainText('by Edna Admin');
  await openHydrated(page, '/activity-log?table=alerts');
  const audit = page.locator('tbody tr[data-event-id]').first();
  await expect(audit).toContainText('Acknowledged alert');
  await expect(audit).toContainText(`Failed sign-ins ${tag}`);
});

test('auditors have the inbox; viewers have neither it nor the rules', async ({ page }) => {
  await signIn(page, 'auditor', '/alerts');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Alerts', exact: true })).toHaveCount(1);
  await expect(page.getByRole('heading', { name: 'Alerts', level: 1 })).toBeVisible();
  await page.context().clearCookies();
  await signIn(page, 'viewer', '/activity-log');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alerts' })).toHaveCount(0);
  await openHydrated(page, '/alerts');
  await expect(page.getByRole('alert')).toContainText('Not allowed');
});
