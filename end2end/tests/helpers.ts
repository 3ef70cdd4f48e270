import { APIRequestContext, expect, Page } from '@playwright/test';

export type Role = 'admin' | 'auditor' | 'viewer';

/** The e2e users (created by scripts/test.sh, all with E2E_PASSWORD). */
export const users: Record<Role, { username: string; name: string }> = {
  admin: { username: 'e2e-admin', name: 'Edna Admin' },
  auditor: { username: 'e2e-auditor', name: 'Ezra Auditor' },
  viewer: { username: 'e2e-viewer', name: 'Eva Viewer' },
};

export function password(): string {
  const p = process.env.E2E_PASSWORD;
  if (!p) throw new Error('scripts/test.sh exports E2E_PASSWORD');
  return p;
}

/** Opens a page and waits until the app has hydrated (clicks before that are lost). */
export async function openHydrated(page: Page, path: string) {
  await page.goto(path);
  await waitHydrated(page);
}

export async function waitHydrated(page: Page) {
  await expect(page.locator('#app[data-hydrated="true"]')).toBeAttached();
}

/** Signs in through the login form, the way a person does. */
export async function signIn(page: Page, role: Role, path = '/activity-log') {
  await openHydrated(page, `/login?next=${encodeURIComponent(path)}`);
  await page.getByLabel('Username or email').fill(users[role].username);
  await page.getByLabel('Password').fill(password());
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('user-menu')).toContainText(users[role].name);
  await waitHydrated(page);
}

/** Signs an API request context in (it keeps the session cookie). */
export async function signInRequest(request: APIRequestContext, role: Role) {
  const response = await request.post('/api/login', {
    form: { username: users[role].username, password: password(), next: '/activity-log' },
    headers: { Accept: 'text/html' },
  });
  expect(response.ok()).toBe(true);
}

/** The event ids of the rows on screen, top to bottom. */
export async function rowIds(page: Page): Promise<number[]> {
  return page
    .locator('tbody tr[data-event-id]')
    .evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-event-id'))));
}

/** Marks the window; a full page load would lose the mark. */
export async function markWindow(page: Page) {
  await page.evaluate(() => ((window as any).__auditdeckMark = 'same-document'));
}

export async function windowIsMarked(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as any).__auditdeckMark === 'same-document');
}

/** The table's count, once it has arrived (the browser fetches it after the rows). */
export async function resultCount(page: Page): Promise<number> {
  const label = page.getByTestId('result-count');
  await expect(label).toHaveText(/\d/);
  return Number((await label.innerText()).replace(/[^\d]/g, ''));
}

/** Adds a signed webhook stream to `url` (of no events itself: alerts and digests use it) on Settings → Streams. */
export async function addWebhookStream(page: Page, name: string, url: string) {
  await openHydrated(page, '/settings/streams');
  const streams = page.locator('form.stream-form');
  await streams.getByLabel('Name', { exact: true }).fill(name);
  await streams.getByRole('combobox', { name: /^Kind/ }).selectOption('webhook');
  await streams.getByLabel('Address', { exact: true }).fill(url);
  await streams.getByLabel(/^Filter/).fill('action=NOTHING_AT_ALL');
  await streams.getByRole('button', { name: 'Add stream' }).click();
  await expect(page.getByTestId('stream-secret')).toBeVisible();
}
