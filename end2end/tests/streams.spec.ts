import { expect, test } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { openHydrated, signIn } from './helpers';

/** A webhook receiver the spec runs: it keeps each request it is sent. */
class Receiver {
  got: { headers: IncomingHttpHeaders; body: string }[] = [];
  server?: Server;
  port = 0;

  async start(port = 0) {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        this.got.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop() {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  /** The ids of every event received, in the order they came. */
  ids(): number[] {
    return this.got.flatMap((r) => (JSON.parse(r.body) as { id: number }[]).map((e) => e.id));
  }
}

/** Whether a request carries a valid Standard Webhooks signature by `secret`. */
function signedBy(secret: string, r: { headers: IncomingHttpHeaders; body: string }): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const content = `${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.${r.body}`;
  const expected = `v1,${createHmac('sha256', key).update(content).digest('base64')}`;
  return String(r.headers['webhook-signature']).split(' ').includes(expected);
}

async function ingest(request: import('@playwright/test').APIRequestContext, tag: string, n: number): Promise<number[]> {
  const events = Array.from({ length: n }, (_, i) => ({
    action: 'PUBLISH',
    table: 'articles',
    description: `${tag} ${i + 1}`,
  }));
  const response = await request.post('/api/v1/events', {
    data: events,
    headers: { Authorization: `Bearer ${process.env.E2E_API_KEY}` },
  });
  expect(response.status()).toBe(201);
  return (await response.json()).ids;
}

test('an admin streams the log to a webhook, sees it fail while the receiver is down, and the lag drain after', async ({ page }) => {
  test.setTimeout(90_000);
  const receiver = new Receiver();
  await receiver.start();
  const tag = `stream-e2e-${Date.now()}`;
  await signIn(page, 'admin', '/settings/streams');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Streams' })).toBeVisible();

  const form = page.locator('form.stream-form');
  await form.getByLabel('Name', { exact: true }).fill('E2E receiver');
  await form.getByRole('combobox', { name: /^Kind/ }).selectOption('webhook');
  await form.getByLabel('Address', { exact: true }).fill(`http://127.0.0.1:${receiver.port}/hook`);
  await form.getByLabel(/^Filter/).fill('action=PUBLISH&table=articles');
  await form.getByRole('button', { name: 'Add stream' }).click();
  const secret = await page.getByTestId('stream-secret').textContent();
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}$/);

  const card = page.locator('article.stream-card[data-stream="E2E receiver"]');
  await expect(card.getByTestId('stream-health')).toHaveText('Healthy');

  // The test event arrives, signed with the secret shown.
  await card.getByRole('button', { name: 'Send test event' }).click();
  await expect(card.getByRole('status')).toContainText('The test event reached');
  expect(receiver.got).toHaveLength(1);
  expect(JSON.parse(receiver.got[0].body)[0].action).toBe('TEST');
  expect(signedBy(secret!, receiver.got[0])).toBe(true);

  // Events arrive as they are stored, in id order, signed.
  const first = await ingest(page.request, tag, 3);
  await expect.poll(() => receiver.ids().filter((id) => id > 0)).toEqual(first);
  expect(receiver.got.every((r) => signedBy(secret!, r))).toBe(true);
  await expect(card.getByTestId('stream-delivered')).toContainText('3 today');

  // The receiver goes down: the destination turns failing, with the error.
  await receiver.stop();
  const second = await ingest(page.request, tag, 2);
  await expect(card).toHaveAttribute('data-health', 'failing', { timeout: 20_000 });
  await expect(card.getByTestId('stream-health')).toHaveText('Failing');
  await expect(card.getByTestId('stream-error')).toContainText('could not deliver');
  await expect(card.getByTestId('stream-lag')).toHaveAttribute('data-behind', /^[1-9]/);
  // The top bar tells an admin on any page.
  await openHydrated(page, '/activity-log');
  await expect(page.getByTestId('streams-badge')).toHaveText(/1 stream failing/);
  await page.getByTestId('streams-badge').click();
  await expect(page).toHaveURL(/\/settings\/streams$/);

  // Back up: the backlog arrives, nothing lost, and the lag drains to zero.
  const before = receiver.got.length;
  await receiver.start(receiver.port);
  await expect.poll(() => receiver.ids().filter((id) => id > 0), { timeout: 20_000 }).toEqual([...first, ...second]);
  expect(receiver.got.length).toBe(before + 1);
  await expect(card.getByTestId('stream-health')).toHaveText('Healthy', { timeout: 10_000 });
  await expect(card.getByTestId('stream-lag')).toHaveText('none: caught up');

  // The delivery log shows the failures and the deliveries.
  await card.getByRole('button', { name: 'Delivery log' }).click();
  const log = card.locator('table.stream-attempts');
  await expect(log.locator('tbody tr').first()).toContainText('Delivered');
  await expect(log).toContainText('Failed');
  await expect(log).toContainText('Test event');

  // Deleted after a confirmation; the change is in the Activity Log.
  await card.getByRole('button', { name: 'Delete', exact: true }).click();
  await card.getByRole('button', { name: 'Delete stream' }).click();
  await expect(card).toHaveCount(0);
  await receiver.stop();
  await openHydrated(page, '/activity-log?table=streams');
  await expect(page.locator('tbody tr[data-event-id]').first()).toContainText('Deleted stream "E2E receiver"');
  await expect(page.locator('table.events tbody')).toContainText('Created stream "E2E receiver"');
});

test('auditors and viewers do not see Streams, and its server functions refuse them', async ({ page }) => {
  for (const role of ['auditor', 'viewer'] as const) {
    await signIn(page, role);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await expect(nav.getByRole('link', { name: 'Activity Log' })).toBeVisible();
    await expect(nav.getByRole('link', { name: 'Streams' })).toHaveCount(0);
    for (const [endpoint, form] of [
      ['list_streams', {}],
      ['create_stream', { 'stream[name]': 'x', 'stream[kind]': 'webhook', 'stream[url]': 'http://127.0.0.1:9/hook', 'stream[start]': 'now' }],
      ['send_stream_test', { id: '1' }],
    ] as const) {
      const response = await page.request.post(`/api/${endpoint}`, {
        form,
        headers: { 'Sec-Fetch-Site': 'same-origin', Accept: 'application/json' },
      });
      expect(response.status(), `${role} ${endpoint}`).toBe(403);
    }
    await openHydrated(page, '/settings/streams');
    await expect(page.getByRole('alert')).toContainText('needs the admin role');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(/\/login/);
  }
});
