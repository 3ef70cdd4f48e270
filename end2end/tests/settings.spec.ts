import { test, expect } from '@playwright/test';
import { openHydrated, signIn, waitHydrated } from './helpers';

test('only admins see Settings; others are refused by the server', async ({ page }) => {
  await signIn(page, 'admin');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Users' })).toBeVisible();
  await expect(nav.getByRole('link', { name: 'API keys' })).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);

  for (const role of ['auditor', 'viewer'] as const) {
    await signIn(page, role);
    await expect(nav.getByRole('link', { name: 'Activity Log' })).toBeVisible();
    await expect(nav.getByRole('link', { name: 'Users' })).toHaveCount(0);
    await openHydrated(page, '/settings/users');
    await expect(page.getByRole('alert')).toContainText('needs the admin role');
    await expect(page.locator('tr[data-username]')).toHaveCount(0);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(/\/login/);
  }
});

test('an admin creates a user who can then sign in', async ({ page }) => {
  const username = `newcomer${Date.now() % 100000}`;
  const password = 'a long new password';
  await signIn(page, 'admin', '/settings/users');
  const form = page.locator('form.settings-form');
  await form.getByLabel('Username').fill(username);
  await form.getByLabel('Full name').fill('Nia Newcomer');
  await form.getByLabel('Email').fill(`${username}@example.com`);
  await form.getByLabel('Role').selectOption('auditor');
  await form.getByLabel('Password').fill(password);
  await form.getByRole('button', { name: 'Add user' }).click();
  await expect(page.getByRole('status')).toHaveText('User added.');
  const row = page.locator(`tr[data-username="${username}"]`);
  await expect(row).toContainText('Nia Newcomer');
  await expect(row.getByLabel(`Role of ${username}`)).toHaveValue('auditor');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);
  await waitHydrated(page);
  await page.getByLabel('Username or email').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('user-menu')).toContainText('Nia Newcomer');
  await expect(page.getByTestId('user-menu')).toContainText('Auditor');
});

test('an admin disables a user, who then cannot sign in', async ({ page, browser }) => {
  const username = `leaver${Date.now() % 100000}`;
  await signIn(page, 'admin', '/settings/users');
  const form = page.locator('form.settings-form');
  await form.getByLabel('Username').fill(username);
  await form.getByLabel('Full name').fill('Leo Leaver');
  await form.getByLabel('Email').fill(`${username}@example.com`);
  await form.getByLabel('Password').fill('leaver password');
  await form.getByRole('button', { name: 'Add user' }).click();
  const row = page.locator(`tr[data-username="${username}"]`);
  await row.getByRole('button', { name: 'Disable' }).click();
  await expect(row).toContainText('Disabled');

  const other = await browser.newPage();
  await openHydrated(other, '/login');
  await other.getByLabel('Username or email').fill(username);
  await other.getByLabel('Password').fill('leaver password');
  await other.getByRole('button', { name: 'Sign in' }).click();
  await expect(other.getByRole('alert')).toHaveText('This account is disabled.');
  await other.close();
});

test('an admin creates an API key, sees it once, and revokes it', async ({ page, request }) => {
  const label = `e2e-key-${Date.now() % 100000}`;
  await signIn(page, 'admin', '/settings/api-keys');
  await page.getByLabel('Label').fill(label);
  await page.getByRole('button', { name: 'Create key' }).click();
  const key = (await page.getByTestId('new-api-key').textContent()) ?? '';
  expect(key).toMatch(/^adk_[A-Za-z0-9]{40}$/);
  const row = page.locator(`tr[data-key-label="${label}"]`);
  await expect(row).toContainText('never');
  await expect(row).not.toContainText(key);

  const sent = await request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: { action: 'PING', description: `ping from ${label}` },
  });
  expect(sent.status()).toBe(201);

  await page.reload();
  await waitHydrated(page);
  await expect(page.getByTestId('new-api-key')).toHaveCount(0);
  await expect(row).not.toContainText('never');
  await row.getByRole('button', { name: `Revoke ${label}` }).click();
  await expect(row).toContainText('Revoked');
  const refused = await request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: { action: 'PING' },
  });
  expect(refused.status()).toBe(401);
});

test('an admin creates a key that may only read: its scopes are listed and it may not send', async ({ page, request }) => {
  const label = `e2e-reader-${Date.now() % 100000}`;
  await signIn(page, 'admin', '/settings/api-keys');
  await page.getByLabel('Label').fill(label);
  const scopes = page.getByRole('group', { name: 'What the key may do' });
  // Sending is ticked by default; this key only reads.
  await expect(scopes.getByRole('checkbox', { name: /events:write/ })).toBeChecked();
  await scopes.getByRole('checkbox', { name: /events:write/ }).uncheck();
  await scopes.getByRole('checkbox', { name: /events:read/ }).check();
  await page.getByRole('button', { name: 'Create key' }).click();
  const key = (await page.getByTestId('new-api-key').textContent()) ?? '';
  expect(key).toMatch(/^adk_/);
  const row = page.locator(`tr[data-key-label="${label}"]`);
  await expect(row.getByTestId('key-scopes')).toHaveText('events:read');

  const sent = await request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: { action: 'PING' },
  });
  expect(sent.status()).toBe(403);
  expect((await sent.json()).error).toContain('lacks the events:write scope');

  // With nothing ticked the form says what is missing.
  await page.getByLabel('Label').fill(`${label}-none`);
  await scopes.getByRole('checkbox', { name: /events:read/ }).uncheck();
  await scopes.getByRole('checkbox', { name: /events:write/ }).uncheck();
  await page.getByRole('button', { name: 'Create key' }).click();
  await expect(page.getByText('scopes: choose at least one')).toBeVisible();
  await expect(page.locator(`tr[data-key-label="${label}-none"]`)).toHaveCount(0);
});
