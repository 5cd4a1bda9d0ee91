// Helpers for the browser tests: Chromium (Debian's, through playwright-core), axe-core run
// inside the page, screenshots as artifacts, and one check per page for the phone layout.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export async function launch() {
  return chromium.launch({
    executablePath: process.env.BEAR_CHROMIUM ?? "/usr/bin/chromium",
    // CI runs as root, where Chromium's sandbox cannot start.
    chromiumSandbox: false,
    args: ["--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** The artifacts directory (screenshots), made if missing. */
export function artifacts() {
  const dir = process.env.BEAR_WEB_ARTIFACTS ?? "test-results";
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Fails on any serious or critical axe-core violation of the page as it is now. */
export async function axe(page, name) {
  // Evaluated through the DevTools protocol, so the page's CSP (no inline script) still holds
  // for everything the page itself does.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
  });
  assert.deepEqual(result, [], `axe on ${name}`);
}

/** The page fits a 390-px phone: nothing scrolls sideways but the tables meant to. */
export async function fitsPhone(page, name) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `${name} is ${width} px wide on a 390-px phone`);
}

export async function shot(page, dir, name) {
  await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
}

const started = Date.now();

/** Prints the step about to run, with the seconds since the script started. */
export function step(name) {
  process.stdout.write(`web: ${name} (at ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
}

/** On a failed step: what the page showed (its main text, capped) and a screenshot. */
export async function report(page, dir) {
  try {
    const text = await page.evaluate(() => document.querySelector("main")?.innerText ?? document.body.innerText);
    process.stderr.write(`the page at ${page.url()} showed:\n${text.slice(0, 4000)}\n`);
    await shot(page, dir, "failure");
  } catch (e) {
    process.stderr.write(`the page could not be read: ${e.message}\n`);
  }
}
