import { test } from '@playwright/test';
import { firstVisit, kb, pagePaths, signInContext, Visit } from '../tests/first-visit';

// On demand (not in the test command): the first-visit table of every page,
// the median of five cold visits each. Run from end2end/ after a release
// build, with the e2e database of scripts/test.sh:
//   npx playwright test --config perf/playwright.config.ts
const RUNS = Number(process.env.PERF_RUNS ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

test('first visit: bytes and time to interactive of every page', async ({ browser }) => {
  test.setTimeout(300_000);
  const rows: string[] = [];
  for (const path of pagePaths) {
    const visits: Visit[] = [];
    for (let run = 0; run < RUNS; run++) {
      const context = await browser.newContext();
      if (path !== '/login') await signInContext(context);
      visits.push(await firstVisit(await context.newPage(), path));
      await context.close();
    }
    const v = visits[0];
    const ms = visits.map((visit) => visit.interactiveMs);
    rows.push(
      `| ${path} | ${kb(v.assets + v.html)} KB | ${kb(v.wasm)} KB | ${kb(v.js)} KB | ${kb(v.css)} KB | ` +
        `${median(ms).toFixed(0)} ms (${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)}) |`,
    );
  }
  console.log(
    ['', '| page | over the wire | wasm | js | css | navigation → hydrated, median |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n'),
  );
});
