// The server going away mid-stream, and coming back: the page says what happened in words and
// works again once the server is back (after signing in again: sessions live in the server).
// Driven by bins/bear/tests/it/web.rs over stdin/stdout: this script prints `web: streaming`,
// the test stops the server and answers `down`; the script prints `web: saw the error`, the
// test starts the server again and answers `up <new sign-in link>`.
import assert from "node:assert/strict";
import { createInterface } from "node:readline";
import { artifacts, launch, report, step } from "./lib.mjs";

const LINK = process.env.BEAR_UI_URL;
assert.ok(LINK, "BEAR_UI_URL is set by the Rust test");
const BASE = new URL(LINK).origin;
const T = 120_000;
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
const next = async () => (await lines.next()).value ?? "";

const browser = await launch();
let page;
try {
  page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(LINK);
  await page.getByRole("navigation", { name: "Sections" }).waitFor();
  await page.goto(`${BASE}/#/chat`);
  await page.getByText("Model and settings").click();
  await page.getByLabel("Max tokens").fill("2000");
  await page.getByLabel("Message").fill("Tell a very long story about a notary in Utrecht.");
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForFunction(() => (document.querySelector(".chat li.assistant")?.textContent ?? "").length > 20, null, { timeout: T });
  step("streaming");
  assert.equal(await next(), "down");
  await page.getByRole("alert").getByText(/broke off before the end/).waitFor({ timeout: T });
  // What had arrived is kept, and the page can be used again.
  await page.getByRole("button", { name: "Send" }).waitFor();
  step("saw the error");
  const [word, link] = (await next()).split(" ");
  assert.equal(word, "up");
  // The next request finds the session gone: back to sign-in, on the same page.
  await page.getByLabel("Message").fill("Say hello.");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor({ timeout: T });
  assert.ok(page.url().endsWith("#/chat"), page.url());
  // The restarted server starts cold (and shares two cores with the other tests): every wait
  // after it gets the long timeout.
  await page.goto(link);
  await page.getByRole("navigation", { name: "Sections" }).waitFor({ timeout: T });
  await page.goto(`${BASE}/#/chat`);
  await page.getByLabel("Message", { exact: true }).fill("Say hello.", { timeout: T });
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForFunction(() => document.querySelectorAll(".chat li.assistant").length === 1 && !document.querySelector('[aria-busy="true"]'), null, { timeout: T });
  step("recovered");
} catch (e) {
  if (page) await report(page, artifacts());
  throw e;
} finally {
  await browser.close();
  // stdin would keep node running after a failure: the test reads our output to its end.
  input.close();
}
