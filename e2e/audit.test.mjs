// End-to-end test of the /audit page in Debian's Chromium, driven by playwright-core.
// Run by crates/trail/tests/it/e2e.rs, which starts a real `trail serve` with known
// data and passes what it made in the environment. Exits non-zero on the first
// failure. The steps run in order, one file after the other, in one browser.

import { assert, browser, consoleErrors, results, step } from './harness.mjs';
import { closeAdminAxePage } from './harness.mjs';

await import('./list.steps.mjs');
await import('./features.steps.mjs');
await closeAdminAxePage();

await step('no console errors', async () => {
  assert(consoleErrors.length === 0, consoleErrors.join('\n'));
});

await browser.close();
console.log(`RESULTS ${JSON.stringify(results)}`);
