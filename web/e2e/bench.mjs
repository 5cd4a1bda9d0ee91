// The web app's speed, in headless Chromium against a real bear-server (started by
// `cargo xtask bench web`, which passes a sign-in link and has made the matters `lease`, the
// demo corpus, and `big`, 1,000 documents). Prints one JSON object on its last line.
//
// - first load: every byte the browser transfers to show the signed-in home page, cold cache;
// - token lag: for answers streamed into the Ask page, the time from the first token's bytes
//   reaching the page (a tee of the same fetch body) to the token shown in the DOM; and, for
//   context, time to first token through the page and through the API directly, in pairs;
// - the 1,000-document matter: response to rows rendered, a filter keystroke to its result,
//   and the longest frame while scrolling the whole list.
import assert from "node:assert/strict";
import { launch } from "./lib.mjs";

const LINK = process.env.BEAR_UI_URL;
assert.ok(LINK, "BEAR_UI_URL is set by cargo xtask bench web");
const BASE = new URL(LINK).origin;
const ROUNDS = Number(process.env.BEAR_WEB_ROUNDS ?? 6);
const T = 120_000;
// Questions of this run only: none can come from the result cache of an earlier run.
const RUN = `${process.pid}-${Date.now()}`;

/** Page-side probes: the first token's arrival (a tee of the ask stream) and the list fetch. */
function probes() {
  const orig = window.fetch;
  window.__bench = {};
  window.fetch = async (...args) => {
    const r = await orig(...args);
    const url = String(args[0]);
    if (url.includes("/documents")) window.__bench.listArrived = performance.now();
    if (!url.endsWith("/api/v1/ask") || !r.body) return r;
    const [app, spy] = r.body.tee();
    (async () => {
      const reader = spy.getReader();
      const dec = new TextDecoder();
      let text = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += dec.decode(value, { stream: true });
        if (text.includes("event: token")) {
          window.__bench.tokenArrived = performance.now();
          reader.cancel();
          return;
        }
      }
    })();
    return new Response(app, { status: r.status, statusText: r.statusText, headers: r.headers });
  };
}

async function firstLoad(context) {
  const page = await context.newPage();
  const requests = [];
  page.on("requestfinished", (r) => requests.push(r));
  await page.goto(LINK);
  await page.getByRole("navigation", { name: "Sections" }).waitFor();
  await page.waitForLoadState("networkidle");
  let bytes = 0;
  for (const r of requests) {
    const s = await r.sizes();
    bytes += s.responseBodySize + s.responseHeadersSize;
  }
  return { page, bytes, requests: requests.length };
}

/** Asks through the page: time to the first token shown, and its lag behind its arrival. */
async function askInPage(page, question) {
  await page.getByLabel("Question", { exact: true }).fill(question);
  return page.evaluate(
    (T) =>
      new Promise((resolve, reject) => {
        const start = performance.now();
        window.__bench.tokenArrived = undefined;
        const answerText = () => document.querySelector(".answer")?.textContent ?? "";
        const obs = new MutationObserver(() => {
          if (answerText().trim().length > 0) {
            const shown = performance.now();
            obs.disconnect();
            // The probe and the app read the same chunk; give the probe its turn if the app's
            // render came first in the same task.
            queueMicrotask(() =>
              resolve({ ttft: shown - start, lag: shown - (window.__bench.tokenArrived ?? shown) }),
            );
          }
        });
        obs.observe(document.querySelector("main"), { subtree: true, childList: true, characterData: true });
        setTimeout(() => reject(new Error("no token within the timeout")), T);
        document.querySelector('form button[type="submit"]').click();
      }),
    T,
  );
}

/** Asks the API directly from the same page (same cookie): time to the first token event. */
async function askApi(page, question) {
  return page.evaluate(async (question) => {
    const csrf = await (await fetch("/api/v1/session")).json();
    const start = performance.now();
    const r = await fetch("/api/v1/ask", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf.csrf_token },
      body: JSON.stringify({ question, collection: "lease", stream: true }),
    });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the stream ended without a token");
      text += dec.decode(value, { stream: true });
      if (text.includes("event: token")) {
        const t = performance.now() - start;
        reader.cancel();
        return t;
      }
    }
  }, question);
}

async function tokens(page) {
  await page.goto(`${BASE}/#/ask`);
  await page.getByLabel("Matter", { exact: true }).selectOption("lease");
  const pairs = [];
  for (let i = 0; i < ROUNDS; i++) {
    // A question of its own each time: a repeated one would come from the result cache.
    const q = (n) => `How much notice ends the lease at Keizersgracht 221? (case ${RUN}-${n})`;
    const viaApi = async () => askApi(page, q(`${i}-api`));
    const viaPage = async () => {
      const r = await askInPage(page, q(`${i}-page`));
      await page.getByRole("button", { name: "Ask" }).waitFor({ timeout: T });
      await page.waitForFunction(() => !document.querySelector("form button[type=button]"), null, { timeout: T });
      return r;
    };
    // Alternate which goes first, so the machine's drift does not favour one side.
    const [api, inPage] = i % 2 === 0 ? [await viaApi(), await viaPage()] : [null, await viaPage()];
    pairs.push({ api: api ?? (await viaApi()), page: inPage.ttft, lag: inPage.lag });
  }
  return pairs;
}

async function bigList(page) {
  await page.goto(`${BASE}/#/matters`);
  await page.getByRole("link", { name: "big" }).waitFor();
  const render = await page.evaluate(
    () =>
      new Promise((resolve) => {
        window.__bench.listArrived = undefined;
        const obs = new MutationObserver(() => {
          if (document.querySelectorAll("table.docs tbody tr").length === 1000) {
            obs.disconnect();
            resolve(performance.now() - window.__bench.listArrived);
          }
        });
        obs.observe(document.querySelector("main"), { subtree: true, childList: true });
        location.hash = "#/matters/big";
      }),
  );
  const filter = await page.evaluate(async () => {
    const input = document.querySelector('input[type="search"]:not([required])');
    const rows = () => document.querySelectorAll("table.docs tbody tr").length;
    const typed = (value, want) =>
      new Promise((resolve) => {
        const start = performance.now();
        const obs = new MutationObserver(() => {
          if (rows() === want) {
            obs.disconnect();
            resolve(performance.now() - start);
          }
        });
        obs.observe(document.querySelector("table.docs"), { subtree: true, childList: true });
        input.value = value;
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
    const narrow = await typed("doc-0999", 1);
    const wide = await typed("", 1000);
    return Math.max(narrow, wide);
  });
  const scroll = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const end = document.documentElement.scrollHeight;
        let last = performance.now();
        let worst = 0;
        let y = 0;
        const stepPx = Math.max(200, end / 60);
        const frame = () => {
          const now = performance.now();
          worst = Math.max(worst, now - last);
          last = now;
          y += stepPx;
          window.scrollTo(0, y);
          if (y < end) requestAnimationFrame(frame);
          else resolve(worst);
        };
        requestAnimationFrame(frame);
      }),
  );
  return { render, filter, scroll };
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(probes);
  const { page, bytes, requests } = await firstLoad(context);
  const pairs = await tokens(page);
  const list = await bigList(page);
  console.log(JSON.stringify({ first_load_bytes: bytes, first_load_requests: requests, pairs, list }));
} finally {
  await browser.close();
}
