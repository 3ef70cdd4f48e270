import { BrowserContext, Page } from '@playwright/test';
import { password, users } from './helpers';

/** Every page, with the path a first visit opens. */
export const pagePaths = [
  '/login',
  '/overview',
  '/activity-log',
  '/admin-sessions',
  '/integrity',
  '/settings/users',
  '/settings/api-keys',
  '/settings/retention',
  '/settings/streams',
  '/alerts',
  '/settings/alerts',
];

/** What a first visit to a page downloads, as served (compressed), and how long it takes to become interactive. */
export interface Visit {
  path: string;
  /** Bytes over the wire of the app's WebAssembly, JavaScript and CSS. */
  assets: number;
  wasm: number;
  js: number;
  css: number;
  /** The HTML of the page itself. */
  html: number;
  /** Milliseconds from the start of navigation until the page is hydrated. */
  interactiveMs: number;
  files: string[];
}

/** Signs the context in (its cookie), without visiting a page. */
export async function signInContext(context: BrowserContext) {
  const response = await context.request.post('/api/login', {
    form: { username: users.admin.username, password: password(), next: '/activity-log' },
    headers: { Accept: 'text/html' },
    maxRedirects: 0,
  });
  if (response.status() >= 400) throw new Error(`sign-in failed: ${response.status()}`);
}

/**
 * Opens `path` in a page whose cache is off, counting every response's
 * encoded size, and records when the app's root gets `data-hydrated`.
 */
export async function firstVisit(page: Page, path: string): Promise<Visit> {
  await page.addInitScript(() => {
    new MutationObserver((_, observer) => {
      const app = document.getElementById('app');
      if (app?.getAttribute('data-hydrated') === 'true') {
        (window as any).__hydratedAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });
  });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const urls = new Map<string, string>();
  const visit: Visit = { path, assets: 0, wasm: 0, js: 0, css: 0, html: 0, interactiveMs: 0, files: [] };
  cdp.on('Network.responseReceived', (event) => urls.set(event.requestId, event.response.url));
  cdp.on('Network.loadingFinished', (event) => {
    const url = urls.get(event.requestId);
    if (!url) return;
    const name = new URL(url).pathname;
    const bytes = event.encodedDataLength;
    if (name.endsWith('.wasm')) visit.wasm += bytes;
    else if (name.endsWith('.js')) visit.js += bytes;
    else if (name.endsWith('.css')) visit.css += bytes;
    else if (!name.startsWith('/api/') && !name.includes('.')) visit.html += bytes;
    else return;
    visit.files.push(`${name} ${bytes}`);
  });
  await page.goto(path);
  await page.locator('#app[data-hydrated="true"]').waitFor({ state: 'attached' });
  await page.waitForLoadState('networkidle');
  visit.interactiveMs = await page.evaluate(() => (window as any).__hydratedAt as number);
  visit.assets = visit.wasm + visit.js + visit.css;
  await cdp.detach();
  return visit;
}

/** Kilobytes, one decimal. */
export function kb(bytes: number): string {
  return (bytes / 1000).toFixed(1);
}
