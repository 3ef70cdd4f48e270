import { expect, test } from '@playwright/test';
import { createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { addWebhookStream, openHydrated, resultCount, signIn } from './helpers';

/** A webhook receiver: the bodies it was sent. */
async function receiver(): Promise<{ url: string; bodies: string[]; close: () => void }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      bodies.push(body);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/hook`, bodies, close: () => server.close() };
}

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

test('an admin adds a threshold rule, ten failed sign-ins from one IP fire one alert without a reload, and its link opens exactly those ten', async ({ page, request }) => {
  test.setTimeout(60_000);
  const tag = `alerts_e2e_${Date.now()}`;
  // A short table name: the Activity Log's table list grows with it, and a
  // long one widens the filter bar for the specs after this one.
  const table = `al${(Date.now() % 1_000_000).toString(36)}`;
  const hook = await receiver();
  await signIn(page, 'admin', '/settings/streams');
  // A webhook stream for the alerts (of no events itself).
  await addWebhookStream(page, `Pager ${tag}`, hook.url);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alerts' }).last().click();
  await expect(page.getByRole('heading', { name: 'Alert rules', level: 1 })).toBeVisible();
  const form = page.locator('form.rule-form');
  await form.getByLabel('Name', { exact: true }).fill(`Failed sign-ins ${tag}`);
  await form.getByRole('combobox', { name: /^Kind/ }).selectOption('threshold');
  await form.getByRole('combobox', { name: /^Severity/ }).selectOption('critical');
  await form.getByLabel(/^Filter/).fill(`action=LOGIN_FAILED&table=${table}`);
  await form.getByLabel('At least (events)').fill('10');
  await form.getByLabel('Window (minutes)').fill('5');
  await form.getByRole('combobox', { name: /^Group/ }).selectOption('ip');
  await form.getByRole('combobox', { name: 'Also send to' }).selectOption({ label: `Stream "Pager ${tag}" (Signed webhook)` });
  await form.getByRole('button', { name: 'Add rule' }).click();
  const row = page.locator(`tr[data-rule="Failed sign-ins ${tag}"]`);
  await expect(row.locator('.rule-summary')).toHaveText(
    `at least 10 events matching action=LOGIN_FAILED&table=${table} within 5 min per IP → stream "Pager ${tag}"`,
  );

  // A bad rule is refused with a message that names the field.
  await form.getByLabel('Name', { exact: true }).fill('Bad zone');
  await form.getByRole('combobox', { name: /^Kind/ }).selectOption('off_hours');
  await form.getByLabel('Time zone').fill('Mars/Base');
  await form.getByRole('button', { name: 'Add rule' }).click();
  await expect(page.getByRole('alert')).toContainText('zone: "Mars/Base" is not a time zone');
  await expect(page.locator('tr[data-rule="Bad zone"]')).toHaveCount(0);

  // The inbox is open when ten failed sign-ins come from one address (and
  // nine from another: one short).
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alerts', exact: true }).first().click();
  await expect(page).toHaveURL(/:\d+\/alerts$/);
  await expect(page.getByRole('heading', { name: 'Alerts', level: 1 })).toBeVisible();
  const badgeBefore = await page.getByTestId('alerts-badge').count() > 0
    ? Number((await page.getByTestId('alerts-badge').innerText()).match(/\d+/)![0])
    : 0;
  const fail = (ip: string, i: number) => ({
    action: 'LOGIN_FAILED',
    table,
    ip,
    description: `Failed sign-in ${i} from ${ip}`,
  });
  const events = [];
  for (let i = 1; i <= 10; i++) {
    events.push(fail('198.51.100.7', i));
    if (i < 10) events.push(fail('203.0.113.9', i));
  }
  const ids = await ingest(request, events);
  const tenIds = ids.filter((_, i) => events[i].ip === '198.51.100.7');

  // Without a reload: the inbox and the top bar's count pick it up.
  const alert = page.locator('table.alerts tbody tr').filter({ hasText: `Failed sign-ins ${tag}` });
  await expect(alert).toHaveCount(1, { timeout: 15_000 });
  await expect(alert).toContainText('198.51.100.7');
  await expect(alert).toContainText('critical');
  await expect(alert.locator('td.num')).toHaveText('10');
  await expect(page.getByTestId('alerts-badge')).toContainText(String(badgeBefore + 1), { timeout: 10_000 });
  // And the stream got it, once.
  await expect(alert.locator('.alert-delivery')).toHaveText(' · sent', { timeout: 10_000 });
  expect(hook.bodies).toHaveLength(1);
  const message = JSON.parse(hook.bodies[0]);
  expect(message.type).toBe('alert');
  expect(message.alert.rule).toBe(`Failed sign-ins ${tag}`);
  expect(message.alert.events).toBe(10);
  hook.close();

  // Its link opens the Activity Log on the three events that fired it.
  await alert.getByRole('link', { name: 'View events' }).click();
  await expect(page).toHaveURL(/\/activity-log\?/);
  const expected = [...tenIds].reverse();
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

test('an admin edits a rule in place: the form comes filled, a bad value is refused, and the change is audited', async ({ page }) => {
  const tag = `edit_e2e_${Date.now()}`;
  const name = `Deletes ${tag}`;
  await signIn(page, 'admin', '/settings/alerts');
  const form = page.locator('form.rule-form');
  await form.getByLabel('Name', { exact: true }).fill(name);
  await form.getByRole('combobox', { name: /^Severity/ }).selectOption('info');
  await form.getByLabel(/^Filter/).fill(`action=DELETE&table=${tag}`);
  await form.getByRole('button', { name: 'Add rule' }).click();
  const row = page.locator(`tr[data-rule="${name}"]`);
  await expect(row.locator('.rule-summary')).toHaveText(`events matching action=DELETE&table=${tag}`);

  // Edit: the form holds the rule as it is; Cancel leaves it alone.
  await row.getByRole('button', { name: `Edit ${name}` }).click();
  await expect(page.getByRole('heading', { name: `Edit rule "${name}"` })).toBeFocused();
  await expect(form.getByLabel('Name', { exact: true })).toHaveValue(name);
  await expect(form.getByRole('combobox', { name: /^Kind/ })).toHaveValue('match');
  await expect(form.getByRole('combobox', { name: /^Severity/ })).toHaveValue('info');
  await expect(form.getByLabel(/^Filter/)).toHaveValue(`action=DELETE&table=${tag}`);
  await form.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByRole('heading', { name: 'Add a rule' })).toBeVisible();

  // A bad value: refused with the field's name, the rule unchanged.
  await row.getByRole('button', { name: `Edit ${name}` }).click();
  await form.getByLabel('Window (minutes)').fill('soon');
  await form.getByRole('button', { name: 'Save rule' }).click();
  await expect(page.getByRole('alert')).toContainText('window_minutes: "soon" is not a whole number');
  await expect(row.locator('.rule-summary')).toHaveText(`events matching action=DELETE&table=${tag}`);

  // Now a threshold, critical, per initiator.
  await form.getByLabel('Window (minutes)').fill('15');
  await form.getByRole('combobox', { name: /^Kind/ }).selectOption('threshold');
  await form.getByLabel('At least (events)').fill('5');
  await form.getByRole('combobox', { name: /^Severity/ }).selectOption('critical');
  await form.getByRole('combobox', { name: /^Group/ }).selectOption('initiator');
  await form.getByRole('button', { name: 'Save rule' }).click();
  await expect(page.getByRole('heading', { name: 'Add a rule' })).toBeVisible();
  await expect(row.locator('.rule-summary')).toHaveText(
    `at least 5 events matching action=DELETE&table=${tag} within 15 min per initiator`,
  );
  await expect(row.locator('.badge.severity-critical')).toHaveText('critical');

  await openHydrated(page, '/activity-log?table=alert_rules&action=UPDATE');
  const audit = page.locator('tbody tr[data-event-id]').first();
  await expect(audit).toContainText(`Changed alert rule "${name}": severity: info → critical; fires on:`);

  // Tidy: the rule goes.
  await openHydrated(page, '/settings/alerts');
  await row.getByRole('button', { name: `Delete ${name}` }).click();
  await expect(row).toHaveCount(0);
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
  await openHydrated(page, '/settings/alerts');
  await expect(page.getByRole('alert')).toContainText('Not allowed');
  await expect(page.getByRole('button', { name: 'Add rule' })).toHaveCount(0);
  // The server refuses it too: 403, nothing listed.
  const listed = await page.request.post('/api/list_alert_rules', { headers: { Accept: 'application/json' } });
  expect(listed.status()).toBe(403);
});

test.describe('in Berlin', () => {
  test.use({ timezoneId: 'Europe/Berlin' });

  test('a first visit reached through sign-in (a page drawn in the browser) shows the digest in the browser zone', async ({ page }) => {
    await signIn(page, 'auditor', '/alerts?digest=last');
    await expect(page.locator('#digest-heading')).toHaveText(/^Week of \d{4}-\d{2}-\d{2} to \d{4}-\d{2}-\d{2} \(Europe\/Berlin\)$/);
    // And the zone is remembered for the server's next drawing.
    expect((await page.context().cookies()).find((c) => c.name === 'auditdeck_zone')?.value).toBe('Europe/Berlin');
  });

  test('the weekly digest: its weeks are the browser zone\'s, its figures open the events behind them, weeks page back and forth, and an admin subscribes through a stream', async ({ page, baseURL }) => {
    test.setTimeout(60_000);
    const tag = `digest_e2e_${Date.now()}`;
    // A returning visitor: the zone the browser reported on an earlier
    // page (the cookie the activity chart sets), so the server draws the
    // digest in it too.
    await page.context().addCookies([{ name: 'auditdeck_zone', value: 'Europe/Berlin', url: baseURL! }]);
    await signIn(page, 'admin', '/alerts');
    await page.getByRole('navigation', { name: 'Alerts' }).getByRole('link', { name: 'Weekly digest' }).click();
    await expect(page).toHaveURL(/\/alerts\?digest=last$/);
    const heading = page.locator('#digest-heading');
    await expect(heading).toHaveText(/^Week of \d{4}-\d{2}-\d{2} to \d{4}-\d{2}-\d{2} \(Europe\/Berlin\)$/);
    const lastWeek = await heading.innerText();
    // The inbox's table is not shown beside it.
    await expect(page.locator('table.alerts')).toBeHidden();

    // Its Events figure opens the Activity Log on that week, with that count.
    const figure = page.locator('.digest-figures a').filter({ hasText: 'Events' });
    const events = Number((await figure.locator('.digest-value').innerText()).replace(/[^\d]/g, ''));
    await figure.click();
    await expect(page).toHaveURL(/\/activity-log\?from=.*&to=/);
    expect(await resultCount(page)).toBe(events);
    // So does Deletions, filtered to DELETE.
    await page.goBack();
    await expect(heading).toHaveText(lastWeek);
    const deletions = page.locator('.digest-figures a').filter({ hasText: 'Deletions' });
    const deleted = Number((await deletions.locator('.digest-value').innerText()).replace(/[^\d]/g, ''));
    await deletions.click();
    await expect(page).toHaveURL(/action=DELETE/);
    expect(await resultCount(page)).toBe(deleted);
    await page.goBack();

    // A week back, and forward again.
    await page.getByRole('link', { name: '← Previous week' }).click();
    await expect(page).toHaveURL(/\/alerts\?digest=\d+&zone=Europe\/Berlin$/);
    await expect(heading).not.toHaveText(lastWeek);
    await page.getByRole('link', { name: 'Next week →' }).click();
    await expect(heading).toHaveText(lastWeek);

    // Subscribing through a webhook stream; it says where the digest goes.
    await addWebhookStream(page, `Digest ${tag}`, 'http://127.0.0.1:9/digest');
    await openHydrated(page, '/alerts?digest=last');
    await expect(page.locator('.digest-status')).toHaveText('You do not get this digest.');
    await page.getByRole('combobox', { name: 'Through' }).selectOption({ label: `Stream "Digest ${tag}" (Signed webhook)` });
    await page.getByRole('button', { name: 'Save' }).click();
    await expect(page.locator('.digest-status')).toHaveText(`Sent to you every Monday through stream "Digest ${tag}" (weeks from Monday 00:00, Europe/Berlin).`);
    await openHydrated(page, '/activity-log?table=alert_digests');
    await expect(page.locator('tbody tr[data-event-id]').first()).toContainText(`Subscribed to the weekly digest through stream "Digest ${tag}" (weeks from Monday 00:00 Europe/Berlin)`);
    // And unsubscribing.
    await openHydrated(page, '/alerts?digest=last');
    await page.getByRole('combobox', { name: 'Through' }).selectOption({ label: 'Nothing (unsubscribe)' });
    await page.getByRole('button', { name: 'Save' }).click();
    await expect(page.locator('.digest-status')).toHaveText('You do not get this digest.');

    // Auditors read the digest but have nothing to subscribe with.
    await page.context().clearCookies();
    await page.context().addCookies([{ name: 'auditdeck_zone', value: 'Europe/Berlin', url: baseURL! }]);
    await signIn(page, 'auditor', '/alerts?digest=last');
    await expect(heading).toHaveText(lastWeek);
    await expect(page.getByRole('button', { name: 'Save' })).toHaveCount(0);
  });
});
