// The web app driven end to end in headless Chromium against a real bear-server with the real
// models (started by bins/bear/tests/it/web.rs, which passes the sign-in link and the corpus).
// Each page is checked with axe-core and at phone width, and screenshotted.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launch, artifacts, axe, fitsPhone, report, shot, step } from "./lib.mjs";

const LINK = process.env.BEAR_UI_URL;
const CORPUS = process.env.BEAR_CORPUS;
const BIG = Number(process.env.BEAR_MAX_FILE_BYTES ?? 0);
assert.ok(LINK && CORPUS, "BEAR_UI_URL and BEAR_CORPUS are set by the Rust test");
const BASE = new URL(LINK).origin;
const OUT = artifacts();
const T = 120_000;

/** Files that must be refused, and one whose text is hostile. */
function badFiles() {
  const dir = mkdtempSync(join(tmpdir(), "bear-web-"));
  const files = {
    hostile: join(dir, "hostile-notes.md"),
    empty: join(dir, "empty.txt"),
    unsupported: join(dir, "archive.zip"),
  };
  writeFileSync(
    files.hostile,
    "# Hostile notes\n\nThe escrow agent is Quillfeather Trust.\n\n<script>window.__pwned = 1</script>\n\n" +
      '<img src="x" onerror="window.__pwned = 2">\n\n[click me](javascript:window.__pwned=3)\n\n' +
      "<iframe src=\"https://example.com\"></iframe> Quillfeather holds the deposit.\n",
  );
  writeFileSync(files.empty, "");
  writeFileSync(files.unsupported, Buffer.from("PK\x03\x04 not really a zip"));
  if (BIG) {
    files.big = join(dir, "too-big.txt");
    writeFileSync(files.big, "lease ".repeat(Math.ceil((BIG + 1024) / 6)));
  }
  return files;
}

async function check(page, name) {
  await axe(page, name);
  await shot(page, OUT, name);
  await page.setViewportSize({ width: 390, height: 844 });
  await fitsPhone(page, name);
  await shot(page, OUT, `${name}-phone`);
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function signIn(page) {
  step("sign in with the one-time link");
  await page.goto(LINK);
  await page.getByRole("navigation", { name: "Sections" }).waitFor();
  assert.ok(!page.url().includes("login="), "the token leaves the address bar");
  await check(page, "ask-empty");
}

async function csrfRefused(page) {
  step("a change without the CSRF token is refused");
  const status = await page.evaluate(async () => {
    const r = await fetch("/api/v1/collections", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "forged" }),
    });
    return r.status;
  });
  assert.equal(status, 403);
}

async function createMatter(page) {
  step("create a matter");
  await page.goto(`${BASE}/#/matters`);
  await page.getByLabel("Name (lower-case letters, digits, - and _)").fill("lease");
  await page.getByLabel("PII policy for its documents").selectOption("replace");
  await page.getByRole("button", { name: "Create matter" }).click();
  await page.getByRole("link", { name: "lease" }).waitFor();
  await check(page, "matters");
}

async function upload(page, bad) {
  step("upload the corpus and the bad files");
  await page.getByRole("link", { name: "lease" }).click();
  const good = ["commercial-lease.pdf", "mutual-nda.md", "employment-agreement.docx", "judgment-dismissal.html"].map(
    (f) => join(CORPUS, f),
  );
  const files = [...good, bad.hostile, bad.empty, bad.unsupported, ...(bad.big ? [bad.big] : [])];
  await page.locator('input[type="file"]').setInputFiles(files);
  const uploads = page.getByRole("list", { name: "Uploads" });
  await uploads.locator("li").nth(files.length - 1).waitFor();
  await page.waitForFunction(
    (n) => document.querySelectorAll(".uploads li.done, .uploads li.refused").length === n,
    files.length,
    { timeout: T },
  );
  const done = await uploads.locator("li.done").count();
  assert.equal(done, good.length + 1, "the corpus files and the hostile one are ingested");
  for (const name of ["empty.txt", "archive.zip", ...(bad.big ? ["too-big.txt"] : [])]) {
    const reason = await uploads.locator("li.refused", { hasText: name }).locator(".error").innerText();
    assert.match(reason, /refused: .{10,}/, `${name} is refused with a reason`);
  }
  await page.getByText(`${good.length + 1} of ${good.length + 1} documents`).waitFor();
  await page.getByLabel("Filter").fill("lease");
  await page.getByText(`1 of ${good.length + 1} documents`).waitFor();
  await check(page, "matter");
}

async function ask(page, question) {
  await page.goto(`${BASE}/#/ask`);
  await page.getByLabel("Matter", { exact: true }).selectOption("lease");
  await page.getByLabel("Question", { exact: true }).fill(question);
  await page.getByRole("button", { name: "Ask" }).click();
}

async function askWithCitation(page) {
  step("ask, and open the cited page of the PDF");
  await ask(page, "How much notice must be given to terminate the lease at Keizersgracht 221?");
  const source = page.getByRole("button", { name: /commercial-lease\.pdf\), p\. 3/ });
  await source.waitFor({ timeout: T });
  await source.click();
  const panel = page.getByRole("complementary", { name: /^Source \d+$/ });
  await panel.locator("mark.passage", { hasText: "six months' written notice" }).waitFor();
  await panel.getByText("commercial-lease.pdf, page 3").waitFor();
  // pdf.js loads now, renders page 3, and highlights the passage's text runs over it.
  await panel.locator(".pdf-page canvas").waitFor({ timeout: T });
  await panel.locator(".pdf-hl").first().waitFor({ timeout: T });
  await check(page, "ask-answer");
}

async function verifiedCitations(page) {
  step("citations checked against their sources; strict mode keeps only verified statements");
  const question = "What is the rent per month for the offices at Keizersgracht 221?";
  await ask(page, question);
  const checks = page.getByRole("region", { name: "Citations checked" });
  const refused = page.getByText("no statement of the answer could be verified");
  await checks.or(refused).first().waitFor({ timeout: T });
  // Strict (the default): every statement shown has a verified citation with its passage.
  const strictRefused = await refused.isVisible();
  const removed = strictRefused ? 0 : await checks.getByRole("note").count();
  if (!strictRefused) {
    const items = checks.locator("li");
    assert.ok((await items.count()) > 0);
    assert.equal(await checks.locator("li.unverified").count(), 0, "strict mode shows no unverified statement");
    for (const q of await checks.locator("li.verified blockquote").allInnerTexts()) assert.match(q, /“.{3,}”/);
    await page.getByText(/ — cited, verified/).first().waitFor();
  }
  await page.getByRole("button", { name: /commercial-lease\.pdf\), p\. 2/ }).waitFor();
  await check(page, "ask-verified");
  // Without strict mode the same (greedy) answer keeps what strict removed, marked not verified.
  assert.ok(strictRefused || removed > 0, "the small default model's answer has something strict mode removes");
  await page.getByLabel("Only verified statements").uncheck();
  await page.getByRole("button", { name: "Ask" }).click();
  await page.locator(".checks li.unverified").first().waitFor({ timeout: T });
  await check(page, "ask-not-strict");
  await page.getByLabel("Only verified statements").check();
}

async function notFound(page) {
  step("a question the documents cannot answer");
  await ask(page, "zzqx vlorp grindlewick");
  await page.getByText("Not found in the documents").waitFor({ timeout: T });
}

async function grid(page) {
  step("the review grid: documents against questions, cells checked, CSV downloaded");
  await page.goto(`${BASE}/#/grid`);
  await page.getByLabel("Matter", { exact: true }).selectOption("lease");
  await page.getByLabel("Questions, one per line").fill("What is the monthly rent?\nWho are the parties?");
  await page.getByRole("button", { name: "Fill the grid" }).click();
  const table = page.getByRole("table", { name: "Review grid of lease" });
  await table.waitFor({ timeout: 4 * T });
  const heads = await table.locator("thead th").allInnerTexts();
  assert.deepEqual(heads, ["Document", "What is the monthly rent?", "Who are the parties?"]);
  assert.equal(await table.locator("tbody tr").count(), 5, "a row per document of the matter");
  // Each cell is verified with its passage, or empty with the reason.
  assert.equal(await table.locator("td").count(), 10);
  assert.equal(await table.locator("td.verified").count(), await table.locator("td.verified blockquote").count());
  for (const why of await table.locator("td.unverified .muted").allInnerTexts()) assert.ok(why.length > 10, why);
  const rent = table.locator("tr", { has: page.getByRole("rowheader", { name: "commercial-lease.pdf" }) }).locator("td").first();
  assert.match(await rent.innerText(), /✓.*4,250.*\(p\. 2\)/s, "the lease's rent, verified on page 2");
  const [file] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
  const csv = readFileSync(await file.path(), "utf8");
  assert.match(csv, /^document,path,What is the monthly rent\?,What is the monthly rent\? \(page\),/);
  assert.equal(csv.match(/^[0-9a-f]{32},/gm).length, 5, "a record per document");
  await check(page, "grid");
}

async function history(page) {
  step("the matter's history: reopen an answer, copy it with its citations, delete a question");
  await page.goto(`${BASE}/#/ask`);
  await page.getByLabel("Matter", { exact: true }).selectOption("lease");
  const list = page.getByRole("region", { name: "Asked before in lease" });
  await list.getByRole("button", { name: "zzqx vlorp grindlewick", exact: true }).waitFor();
  await list.getByRole("button", { name: /^How much notice must be given/ }).click();
  await page.getByRole("button", { name: /commercial-lease\.pdf\), p\. 3/ }).waitFor();
  await page.getByRole("button", { name: "Copy with citations" }).click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(copied, /\[\d+\] Commercial Lease Agreement \(commercial-lease\.pdf\), p\. 3/);
  await list.getByRole("button", { name: "Delete the question: zzqx vlorp grindlewick" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await list.getByRole("button", { name: "zzqx vlorp grindlewick", exact: true }).waitFor({ state: "detached" });
  await list.getByRole("button", { name: /^How much notice must be given/ }).waitFor();
  await check(page, "ask-history");
}

async function severalMatters(page) {
  step("one question asked of two matters; a source opens from its own matter");
  await page.goto(`${BASE}/#/matters`);
  await page.getByLabel("Name (lower-case letters, digits, - and _)").fill("loans");
  await page.getByLabel("PII policy for its documents").selectOption("replace");
  await page.getByRole("button", { name: "Create matter" }).click();
  await page.getByRole("link", { name: "loans" }).click();
  await page.locator('input[type="file"]').setInputFiles([join(CORPUS, "loan-agreement.md")]);
  await page.locator(".uploads li.done").waitFor({ timeout: T });
  await page.goto(`${BASE}/#/ask`);
  await page.getByLabel("Matter", { exact: true }).selectOption("lease");
  await page.getByText("Ask other matters too").click();
  await page.getByRole("checkbox", { name: "loans" }).check();
  await page.getByLabel("Question", { exact: true }).fill("What interest rate does the loan from Fjord Capital carry?");
  await page.getByRole("button", { name: "Ask" }).click();
  const loan = page.getByRole("button", { name: /Loan Agreement \(loan-agreement\.md\)/ }).first();
  await loan.waitFor({ timeout: T });
  await loan.click();
  await page.locator(".context mark.passage").waitFor();
  await page.locator(".context").getByText(/4\.5 percent/).first().waitFor();
  await check(page, "ask-two-matters");
}

async function hostileInert(page) {
  step("a hostile document renders inert");
  await page.goto(`${BASE}/#/matters/lease`);
  await page.getByRole("search").getByLabel("Search").fill("Quillfeather escrow");
  await page.getByRole("search").getByRole("button", { name: "Search" }).click();
  await page.locator(".hits li", { hasText: "hostile-notes.md" }).first().waitFor({ timeout: T });
  await ask(page, "Who is the escrow agent, Quillfeather?");
  const source = page.getByRole("button", { name: /hostile-notes\.md/ }).first();
  await source.waitFor({ timeout: T });
  await source.click();
  await page.locator(".context").getByText("window.__pwned", { exact: false }).first().waitFor();
  const state = await page.evaluate(() => ({
    pwned: window.__pwned ?? null,
    images: document.querySelectorAll("main img").length,
    frames: document.querySelectorAll("iframe").length,
    scripts: [...document.querySelectorAll("script")].filter((s) => !s.src).length,
    jsLinks: [...document.querySelectorAll("a")].filter((a) => a.href.startsWith("javascript:")).length,
  }));
  assert.deepEqual(state, { pwned: null, images: 0, frames: 0, scripts: 0, jsLinks: 0 });
}

async function chat(page) {
  step("chat, and stop a long answer");
  await page.goto(`${BASE}/#/chat`);
  await page.getByText("Model and settings").click();
  await page.getByLabel("Max tokens").fill("2000");
  await page.getByLabel("Message").fill("Tell a very long story about a lawyer in Amsterdam.");
  await page.getByRole("button", { name: "Send" }).click();
  const stop = page.getByRole("button", { name: "Stop" });
  await stop.waitFor({ timeout: T });
  await page.waitForFunction(() => (document.querySelector(".chat li.assistant")?.textContent ?? "").length > 20, null, { timeout: T });
  await stop.click();
  await stop.waitFor({ state: "detached" });
  // The model is free again at once: a second message is answered.
  await page.getByLabel("Message").fill("Say hello.");
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForFunction(() => document.querySelectorAll(".chat li.assistant").length === 2 && !document.querySelector('[aria-busy="true"]'), null, { timeout: T });
  await check(page, "chat");
  savedChat = await reopenChat(page);
}

const STORY = "Tell a very long story about a lawyer in Amsterdam.";
/** The id of the chat saved by `chat`, for the other user to look for. */
let savedChat = null;

/** The conversation is kept on the server: listed after a reload, reopened whole. */
async function reopenChat(page) {
  step("the chat is saved, listed after a reload, and reopened");
  const saved = page.getByRole("region", { name: "Saved chats" });
  await saved.getByText("4 messages").waitFor({ timeout: T });
  await page.reload();
  await page.getByRole("button", { name: "New chat" }).waitFor();
  assert.equal(await page.locator(".chat li").count(), 0, "a reload starts a new chat");
  await saved.getByRole("button", { name: STORY, exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll(".chat li.assistant").length === 2);
  assert.equal(await page.locator(".chat li.user p").first().innerText(), STORY);
  // Its settings come back with it.
  await page.getByText("Model and settings").click();
  assert.equal(await page.getByLabel("Max tokens").inputValue(), "2000");
  await page.getByLabel("Max tokens").fill("48");
  const list = await page.evaluate(async () => (await fetch("/api/v1/chats")).json());
  assert.equal(list.length, 1);
  assert.equal(list[0].title, STORY);
  // Going on with it saves into the same chat, not a new one.
  await page.getByLabel("Message").fill("Thank you.");
  await page.getByRole("button", { name: "Send" }).click();
  await saved.getByText("6 messages").waitFor({ timeout: T });
  assert.equal(await saved.getByRole("listitem").count(), 1);
  await check(page, "chat-saved");
  return list[0].id;
}

/** Deleting a saved chat asks first, then it is gone from the list and the server. */
async function deleteChat(page) {
  step("a saved chat is deleted");
  await page.goto(`${BASE}/#/chat`);
  const saved = page.getByRole("region", { name: "Saved chats" });
  await saved.getByRole("button", { name: `Delete the chat: ${STORY}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await saved.getByText("No saved chat yet").waitFor();
  const status = await page.evaluate(async (id) => (await fetch(`/api/v1/chats/${id}`)).status, savedChat);
  assert.equal(status, 404);
}

/** Keyboard only: the skip link, then the PII workbench reached and used with Tab and Enter. */
async function keyboard(page) {
  step("keyboard only");
  await page.goto(`${BASE}/#/pii`);
  await page.reload();
  await page.getByRole("heading", { name: "PII workbench" }).waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
  await page.keyboard.press("Enter");
  // From the main region, Tab reaches the text box first.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "pii-text");
  await page.keyboard.type("Mail jan.devries@example.com today.");
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("Tab");
    if ((await page.evaluate(() => document.activeElement?.textContent)) === "Find PII") break;
  }
  await page.keyboard.press("Enter");
  await page.locator("mark.pii", { hasText: "jan.devries@example.com" }).waitFor();
}

async function pii(page) {
  step("the PII workbench");
  await page.goto(`${BASE}/#/pii`);
  await page.getByLabel("Text", { exact: true }).fill("Write to jan.devries@example.com or call +31 20 123 4567 about the lease.");
  await page.getByRole("button", { name: "Find PII" }).click();
  await page.locator("mark.pii", { hasText: "jan.devries@example.com" }).waitFor();
  await page.getByRole("button", { name: "Scrub" }).click();
  const result = page.locator("pre.result");
  await result.waitFor();
  const text = await result.innerText();
  assert.ok(!text.includes("jan.devries@example.com") && text.includes("EMAIL"), "scrubbed");
  await check(page, "pii");
}

// A prompt of its own each time, so no step cache answers it at once.
const LONG_RUN = `name: long-review
steps:
  - id: prepare
    type: data_processing
    parameters: {operation: template, text: "a very long story about a lawyer called ${process.pid}-${Date.now()}"}
  - id: write
    type: llm_generation
    depends_on: [prepare]
    parameters: {prompt: "Write {{ steps.prepare.output }}", max_tokens: 400}
  - id: more
    type: llm_generation
    depends_on: [write]
    parameters: {prompt: "Write more of {{ steps.prepare.output }}", max_tokens: 4000}
  - id: check
    type: data_processing
    depends_on: [more]
    parameters: {operation: template, text: "done"}
`;

async function workflow(page) {
  step("a workflow run watched live, paused, resumed and cancelled");
  await page.goto(`${BASE}/#/workflows`);
  await page.getByLabel("Definition (YAML or JSON)").fill("name: [unclosed");
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByText(/not valid YAML or JSON at line 1/).waitFor();
  await page.getByLabel("Definition (YAML or JSON)").fill("name: bad\nsteps:\n  - id: x\n    type: nonsense\n");
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByRole("alert").getByText(/steps/).waitFor();
  await check(page, "workflows");
  await page.getByLabel("Definition (YAML or JSON)").fill(LONG_RUN);
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByRole("heading", { name: "long-review" }).waitFor({ timeout: T });
  await page.getByRole("button", { name: "write running" }).waitFor({ timeout: T });
  // Paused while `write` runs: it finishes, the next step does not start until resumed.
  await page.getByRole("button", { name: "Pause" }).click();
  await page.locator("p[role=status] .status.paused").waitFor({ timeout: T });
  await page.getByRole("button", { name: "prepare completed" }).waitFor();
  await check(page, "run");
  await page.getByRole("button", { name: "write completed" }).waitFor({ timeout: T });
  await page.getByRole("button", { name: "more pending" }).waitFor();
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByRole("button", { name: "more running" }).waitFor({ timeout: T });
  await page.getByRole("button", { name: "Cancel run" }).click();
  await page.locator(".status.cancelled").first().waitFor({ timeout: T });
  await page.getByRole("button", { name: "check cancelled" }).or(page.getByRole("button", { name: "check skipped" })).waitFor({ timeout: T });
}

async function models(page) {
  step("models and hardware");
  await page.goto(`${BASE}/#/models`);
  const smol = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "SmolLM2-135M-Instruct.Q4_1", exact: true }) });
  // Loaded by the chat; unloaded and loaded again here.
  await smol.getByRole("button", { name: "Unload SmolLM2-135M-Instruct.Q4_1" }).click();
  await smol.getByRole("cell", { name: "available", exact: true }).waitFor({ timeout: T });
  await smol.getByRole("button", { name: "Load SmolLM2-135M-Instruct.Q4_1" }).click();
  await smol.getByRole("cell", { name: "loaded", exact: true }).waitFor({ timeout: T });
  await page.getByText("Advised: threads").waitFor();
  await check(page, "models");
}

async function admin(page, browser) {
  step("a key made, used, refused a matter it does not own, and revoked");
  await page.goto(`${BASE}/#/admin`);
  await page.getByRole("button", { name: "Verify the audit chain" }).click();
  await page.getByText(/The audit chain holds: \d+ records checked/).waitFor();
  await page.getByLabel("Label").fill("colleague");
  await page.getByRole("button", { name: "Create key" }).click();
  const key = await page.locator("code.secret").innerText();
  await check(page, "admin");

  const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const them = await other.newPage();
  await them.goto(`${BASE}/`);
  await them.getByLabel("API key").fill(key);
  await them.getByRole("button", { name: "Sign in" }).click();
  await them.getByRole("navigation", { name: "Sections" }).waitFor();
  await check(them, "sign-in-done");
  await them.goto(`${BASE}/#/matters`);
  await them.getByText("No matter yet.").waitFor();
  const foreign = await them.evaluate(async () => (await fetch("/api/v1/collections/lease/documents")).status);
  assert.equal(foreign, 404, "a matter another key owns is not even seen");
  await them.goto(`${BASE}/#/chat`);
  await them.getByRole("region", { name: "Saved chats" }).getByText("No saved chat yet").waitFor();
  const theirs = await them.evaluate(async (id) => (await fetch(`/api/v1/chats/${id}`)).status, savedChat);
  assert.equal(theirs, 404, "another user's chat is not even seen");

  await page.getByRole("button", { name: "Revoke key colleague" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("button", { name: "Revoke key colleague" }).waitFor({ state: "detached" });
  // Their next request is refused, and their page lands on sign-in, on the same address.
  await them.getByRole("link", { name: "Ask" }).click();
  await them.getByRole("button", { name: "Sign in" }).waitFor();
  assert.ok(them.url().endsWith("#/ask"));
  await other.close();
}

async function signOut(page) {
  step("sign out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  const status = await page.evaluate(async () => (await fetch("/api/v1/session")).status);
  assert.equal(status, 401);
  await check(page, "sign-in");
}

const browser = await launch();
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => {
    errors.push(`a dialog opened: ${d.message()}`);
    d.dismiss();
  });
  page.setDefaultTimeout(30_000);
  const bad = badFiles();
  await signIn(page);
  await csrfRefused(page);
  await createMatter(page);
  await upload(page, bad);
  await askWithCitation(page);
  await verifiedCitations(page);
  await notFound(page);
  await grid(page);
  await history(page);
  await severalMatters(page);
  await hostileInert(page);
  await chat(page);
  await keyboard(page);
  await pii(page);
  await workflow(page);
  await models(page);
  await admin(page, browser);
  await deleteChat(page);
  await signOut(page);
  assert.deepEqual(errors, [], "no script error or dialog in the page");
  step("all passed");
} catch (e) {
  if (page) await report(page, OUT);
  throw e;
} finally {
  await browser.close();
}
