import { test, expect } from '@playwright/test';
import { openHydrated, password, signIn, users, waitHydrated } from './helpers';

test('a signed-out visit goes to the login page and back after signing in', async ({ page }) => {
  await page.goto('/activity-log?page=2');
  await expect(page).toHaveURL(/\/login\?next=/);
  await waitHydrated(page);
  await page.getByLabel('Username or email').fill(users.auditor.username);
  await page.getByLabel('Password').fill(password());
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/activity-log\?page=2$/);
  await expect(page.getByTestId('user-menu')).toContainText(users.auditor.name);
  await expect(page.getByTestId('user-menu')).toContainText('Auditor');
  await expect(page.locator('.page-link.current')).toHaveText('2');
});

test('a wrong password shows an error and signs nobody in', async ({ page }) => {
  await openHydrated(page, '/login');
  await page.getByLabel('Username or email').fill(users.admin.username);
  await page.getByLabel('Password').fill('definitely not it');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
  await expect(page).toHaveURL(/\/login/);
  await page.goto('/activity-log');
  await expect(page).toHaveURL(/\/login\?next=/);
});

for (const role of ['admin', 'auditor', 'viewer'] as const) {
  test(`${role} signs in, sees who they are, and signs out`, async ({ page }) => {
    await signIn(page, role);
    const menu = page.getByTestId('user-menu');
    await expect(menu).toContainText(users[role].name);
    await expect(menu).toContainText(role[0].toUpperCase() + role.slice(1));
    await expect(page.locator('tbody tr[data-event-id]').first()).toBeVisible();

    await menu.getByRole('button', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(/\/login/);
    await page.goto('/activity-log');
    await expect(page).toHaveURL(/\/login\?next=/);
  });
}

test('sign-ins and sign-outs are on the Activity Log', async ({ page }) => {
  await signIn(page, 'admin');
  await expect(page.locator('tbody tr[data-event-id]').first()).toContainText(`${users.admin.username} signed in`);
  await expect(page.locator('tbody tr[data-event-id]').first()).toContainText('LOGIN');
});
