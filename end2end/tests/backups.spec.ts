import { expect, test } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { signIn } from './helpers';

/** Runs the auditdeck command (the release build) on the server's database. */
function auditdeck(...args: string[]): string {
  const bin = resolve(process.cwd(), '..', 'target', 'release', 'auditdeck');
  return execFileSync(bin, args, { cwd: resolve(process.cwd(), '..'), encoding: 'utf8', stdio: 'pipe' });
}

test('a failed backup raises the badge and says why; a verified one shows on the Integrity page and clears it', async ({
  page,
}) => {
  const dir = mkdtempSync(join(tmpdir(), 'auditdeck-backup-'));
  try {
    await signIn(page, 'auditor', '/integrity');
    await expect(page.getByTestId('backups')).toBeVisible();
    await expect(page.getByTestId('next-backup')).toContainText('none scheduled');

    // A folder that is not there: the command fails, and the dashboard shows it.
    expect(() => auditdeck('backup', join(dir, 'missing', 'auditdeck.db'))).toThrow(/is not a folder/);
    await page.reload();
    await expect(page.getByTestId('last-backup')).toContainText('failed');
    await expect(page.getByTestId('last-backup')).toContainText('is not a folder');
    await expect(page.getByTestId('backup-badge')).toBeVisible();

    // A backup that verifies: the head it covers, on the page; the badge goes.
    const out = auditdeck('backup', join(dir, 'auditdeck.db'));
    const head = /head #(\d+) chain ([0-9a-f]{64})/.exec(out);
    expect(head, out).not.toBeNull();
    await page.reload();
    const last = page.getByTestId('last-backup');
    await expect(last).toContainText('verified');
    await expect(last).toContainText(`#${head![1]}`);
    await expect(last).toContainText('auditdeck.db');
    await expect(last.locator('code.hash')).toHaveAttribute('title', head![2]);
    await expect(page.getByTestId('backup-badge')).toHaveCount(0);
    // The earlier, failed one is listed below it.
    await page.getByText('Earlier backups').click();
    await expect(page.locator('.older-backups li').first()).toContainText('failed');

    // The checksum beside the file holds, checked by the usual tool.
    execFileSync('sha256sum', ['-c', 'auditdeck.db.sha256'], { cwd: dir, stdio: 'pipe' });

    // Both are events in the log.
    await page.goto('/activity-log?action=BACKUP');
    await expect(page.getByText(/Backup verified: .* entries up to #/).first()).toBeVisible();
    await expect(page.getByText(/Backup to .* failed: .*is not a folder/).first()).toBeVisible();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
