import { expect, Page, test } from '@playwright/test';
import { openHydrated, signIn } from './helpers';

/** Whether the page scrolls sideways (it should not, at any width). */
async function overflowsSideways(page: Page, selector = 'html'): Promise<boolean> {
  return page.locator(selector).first().evaluate((el) => el.scrollWidth > el.clientWidth + 1);
}

for (const width of [1280, 1440, 1920]) {
  test(`at ${width} px the description has room and the actions cover nothing`, async ({ page }) => {
    await page.setViewportSize({ width, height: 900 });
    await signIn(page, 'admin', '/activity-log');
    const rows = page.locator('tbody tr[data-event-id]');
    await expect(rows.first()).toBeVisible();
    expect(await overflowsSideways(page, '.table-scroll')).toBe(false);
    const description = await rows.first().locator('td.description').boundingBox();
    const actions = await rows.first().locator('td.row-actions').boundingBox();
    if (width >= 1440) expect(description!.width).toBeGreaterThanOrEqual(320);
    else expect(description!.width).toBeGreaterThanOrEqual(200);
    // The actions sit beside the description, not over it.
    expect(actions!.x).toBeGreaterThanOrEqual(description!.x + description!.width - 1);
    expect(await overflowsSideways(page)).toBe(false);
  });
}

test.describe('on a phone (390 px)', () => {
  test.use({ viewport: { width: 390, height: 844 }, hasTouch: true });

  test('a menu button opens the sidebar, which closes on a choice', async ({ page }) => {
    await signIn(page, 'admin', '/activity-log');
    const sidebar = page.getByRole('navigation', { name: 'Main' });
    await expect(sidebar).not.toBeInViewport();
    const menu = page.getByRole('button', { name: 'Menu' });
    await expect(menu).toHaveAttribute('aria-expanded', 'false');
    await menu.click();
    await expect(menu).toHaveAttribute('aria-expanded', 'true');
    await expect(sidebar).toBeInViewport();
    await sidebar.getByRole('link', { name: 'Admin Sessions' }).click();
    await expect(page).toHaveURL(/\/admin-sessions/);
    await expect(sidebar).not.toBeInViewport();
    await expect(menu).toHaveAttribute('aria-expanded', 'false');
    // Escape closes it too.
    await menu.click();
    await expect(sidebar).toBeInViewport();
    await page.keyboard.press('Escape');
    await expect(sidebar).not.toBeInViewport();
  });

  test('the top bar fits and each event is a card a thumb can use', async ({ page }) => {
    await signIn(page, 'admin', '/activity-log');
    expect(await overflowsSideways(page)).toBe(false);
    expect(await overflowsSideways(page, '.topbar')).toBe(false);
    await expect(page.getByRole('button', { name: 'Sign out' })).toBeInViewport();
    const card = page.locator('tbody tr[data-event-id]').first();
    await expect(card).toBeVisible();
    expect(await card.evaluate((el) => getComputedStyle(el).display)).toBe('grid');
    const box = (await card.boundingBox())!;
    expect(box.width).toBeLessThanOrEqual(390);
    // Time, initiator, action, table and key, description and View: all on the card.
    for (const cell of ['td.c-date', 'td.c-who', 'td.c-action', 'td.c-table', 'td.c-key', 'td.c-desc']) {
      const part = card.locator(cell);
      await expect(part, cell).toBeVisible();
      const b = (await part.boundingBox())!;
      expect(b.x, cell).toBeGreaterThanOrEqual(box.x - 1);
      expect(b.x + b.width, cell).toBeLessThanOrEqual(box.x + box.width + 1);
    }
    const view = card.getByRole('button', { name: /^View event / });
    const button = (await view.boundingBox())!;
    expect(button.height).toBeGreaterThanOrEqual(40);
    await view.tap();
    await expect(page.getByRole('dialog', { name: /^Event \d+/ })).toBeVisible();
    await page.keyboard.press('Escape');
    // Sorting is still at hand: the header row is a row of sort links.
    await page.getByRole('link', { name: /Initiator/ }).tap();
    await expect(page).toHaveURL(/[?&]sort=user\b/);
  });

  test('Admin Sessions are cards too', async ({ page }) => {
    await signIn(page, 'admin', '/admin-sessions');
    const card = page.locator('tbody tr[data-session-id]').first();
    await expect(card).toBeVisible();
    expect(await card.evaluate((el) => getComputedStyle(el).display)).toBe('grid');
    for (const cell of ['td.c-date', 'td.c-who', 'td.c-url', 'td.c-method', 'td.c-status']) {
      await expect(card.locator(cell), cell).toBeInViewport();
    }
    expect(await overflowsSideways(page)).toBe(false);
  });
});

test('the dark-mode switch is remembered by this browser', async ({ page }) => {
  await signIn(page, 'viewer');
  await openHydrated(page, '/activity-log');
  const html = page.locator('html');
  const switchButton = page.getByRole('button', { name: 'Dark mode' });
  await expect(switchButton).toHaveAttribute('aria-pressed', 'false');
  const light = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  await switchButton.click();
  await expect(switchButton).toHaveAttribute('aria-pressed', 'true');
  await expect(html).toHaveAttribute('data-theme', 'dark');
  const dark = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  expect(dark).not.toBe(light);
  // A new page load is dark from its first byte (the server renders it).
  const response = await page.request.get('/integrity');
  expect(await response.text()).toMatch(/<html[^>]*data-theme="dark"/);
  await openHydrated(page, '/integrity');
  await expect(html).toHaveAttribute('data-theme', 'dark');
  await expect(switchButton).toHaveAttribute('aria-pressed', 'true');
  await switchButton.click();
  await expect(html).toHaveAttribute('data-theme', 'light');
});

test.describe('when the system prefers dark', () => {
  test.use({ colorScheme: 'dark' });

  test('the pages follow it until the switch says otherwise', async ({ page }) => {
    await signIn(page, 'viewer');
    await openHydrated(page, '/activity-log');
    await expect(page.locator('html')).not.toHaveAttribute('data-theme', /./);
    await expect(page.getByRole('button', { name: 'Dark mode' })).toHaveAttribute('aria-pressed', 'true');
    const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(bg).toBe('rgb(15, 20, 32)');
  });
});
