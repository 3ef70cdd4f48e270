import { expect, Page } from '@playwright/test';

/** Opens a page and waits until the app has hydrated (clicks before that are lost). */
export async function openHydrated(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator('.frame[data-hydrated="true"]')).toBeAttached();
}

/** The event ids of the rows on screen, top to bottom. */
export async function rowIds(page: Page): Promise<number[]> {
  const ids = await page.locator('tbody tr[data-event-id]').evaluateAll((rows) =>
    rows.map((r) => Number(r.getAttribute('data-event-id'))),
  );
  return ids;
}

/** Marks the window; a full page load would lose the mark. */
export async function markWindow(page: Page) {
  await page.evaluate(() => ((window as any).__auditdeckMark = 'same-document'));
}

export async function windowIsMarked(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as any).__auditdeckMark === 'same-document');
}
