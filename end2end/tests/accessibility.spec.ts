import AxeBuilder from '@axe-core/playwright';
import { expect, Page, test } from '@playwright/test';
import { openHydrated, signIn } from './helpers';
import { pagePaths } from './first-visit';

/** axe-core on what is on screen now: no serious or critical violation. */
async function expectAccessible(page: Page, what: string, include?: string) {
  let builder = new AxeBuilder({ page });
  if (include) builder = builder.include(include);
  const { violations } = await builder.analyze();
  const bad = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n    ')}`);
  expect(bad, `${what}:\n${bad.join('\n')}`).toEqual([]);
}


for (const theme of ['light', 'dark'] as const) {
  test.describe(`${theme} theme`, () => {
    test.beforeEach(async ({ page, baseURL }) => {
      await page.context().addCookies([{ name: 'auditdeck_theme', value: theme, url: baseURL! }]);
    });

    test(`every page passes axe-core (${theme})`, async ({ page }) => {
      await openHydrated(page, '/login');
      await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
      await expectAccessible(page, '/login');
      await signIn(page, 'admin');
      for (const path of pagePaths.filter((p) => p !== '/login')) {
        await openHydrated(page, path);
        // A lazy page's title is its own once its code has hydrated; the
        // server's is there before, but not in every moment in between.
        await expect(page).toHaveTitle(/ · Auditdeck$/);
        await expectAccessible(page, path);
      }
      // And the Alerts page's second tab, the weekly digest.
      await openHydrated(page, '/alerts?digest=last');
      await expect(page.locator('#digest-heading')).toHaveText(/^Week of /);
      await expectAccessible(page, 'weekly digest');
    });

    test(`the modals and the range picker pass axe-core (${theme})`, async ({ page }) => {
      await signIn(page, 'admin', '/activity-log?action=UPDATE');
      await page.locator('#range-picker-button').click();
      await expect(page.getByRole('dialog', { name: 'Choose a date range' })).toBeVisible();
      await expectAccessible(page, 'range picker');
      await page.keyboard.press('Escape');

      const view = page.getByRole('button', { name: /^View event / }).first();
      await view.click();
      await expect(page.getByRole('dialog', { name: /^Event \d+/ })).toBeVisible();
      await expectAccessible(page, 'event details');
      await page.keyboard.press('Escape');
      await expect(page.getByRole('dialog')).toHaveCount(0);

      await page.getByRole('button', { name: /^View Difference of event / }).first().click();
      await expect(page.getByRole('dialog', { name: /^Difference — event \d+/ })).toBeVisible();
      await expectAccessible(page, 'View Difference');
      await page.keyboard.press('Escape');

      await page.getByRole('checkbox', { name: /^Select event / }).first().check();
      await page.getByTestId('bulk-bar').getByRole('button', { name: 'Delete' }).click();
      await expect(page.getByRole('dialog', { name: 'Delete 1 event?' })).toBeVisible();
      await expectAccessible(page, 'delete confirmation');
    });
  });
}

test('the skip link takes the keyboard past the navigation', async ({ page }) => {
  await signIn(page, 'viewer');
  await openHydrated(page, '/activity-log');
  await page.keyboard.press('Tab');
  const skip = page.getByRole('link', { name: 'Skip to content' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();
  await page.keyboard.press('Enter');
  await expect(page.locator('#main')).toBeFocused();
  // The next Tab lands inside the page, not in the sidebar.
  await page.keyboard.press('Tab');
  expect(await page.evaluate(() => !!document.activeElement?.closest('#main'))).toBe(true);
});
