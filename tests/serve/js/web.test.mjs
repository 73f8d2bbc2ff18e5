// The chat page in headless Chromium (Debian's, driven by playwright-core):
// it loads from loom serve, sends a message, shows the answer as it streams
// in, and a tokens/s figure.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServe } from "./serve.mjs";

const executablePath = process.env.LOOM_CHROMIUM || "/usr/bin/chromium";
let server, browser;
before(async () => {
  server = await startServe(["--backend", "reference"]);  // slow enough to see the answer grow
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
});
after(async () => {
  if (browser) await browser.close();
  await server.stop();
});

test("chat page streams an answer and shows tokens/s", async () => {
  const page = await browser.newPage();
  const failures = [];
  page.on("pageerror", (e) => failures.push(e.message));
  page.on("requestfailed", (r) => failures.push(r.url() + " " + r.failure().errorText));
  await page.goto(server.url + "/");
  assert.equal(await page.title(), "loom chat");
  await page.waitForFunction(() => document.getElementById("model").textContent === "default");

  await page.fill("#max-tokens", "200");
  await page.fill("#temperature", "0");
  await page.fill("#input", "Once upon a time");
  // Record every length the answer passes through while it streams.
  await page.evaluate(() => {
    window.lengths = [];
    new MutationObserver(() => {
      const a = document.querySelector(".msg.assistant .content");
      if (a) window.lengths.push(a.textContent.length);
    }).observe(document.getElementById("log"), { subtree: true, childList: true, characterData: true });
  });
  await page.click("#send");
  await page.waitForFunction(() => !document.getElementById("send").hidden, null, { timeout: 30000 });

  const answer = await page.textContent(".msg.assistant .content");
  const stats = await page.textContent(".msg.assistant .stats");
  const lengths = await page.evaluate(() => window.lengths);
  assert.ok(answer.length > 20, answer);
  assert.ok(!(await page.$(".msg.error")), answer);
  assert.match(stats, /\d+ tokens · [0-9.]+ tokens\/s/);
  assert.ok(Number(/([0-9.]+) tokens\/s/.exec(stats)[1]) > 0, stats);
  assert.ok(new Set(lengths).size > 5, `the answer should appear piece by piece, saw lengths ${lengths}`);
  assert.equal(await page.textContent(".msg.user .content"), "Once upon a time");
  assert.deepEqual(failures, []);

  // A second turn keeps the conversation: two user and two assistant messages.
  await page.fill("#input", "The end");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 2 &&
                                   !document.getElementById("send").hidden, null, { timeout: 30000 });
  assert.equal(await page.locator(".msg.user").count(), 2);
});
