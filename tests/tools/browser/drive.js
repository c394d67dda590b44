// Drives headless Chromium (Debian's package) through pages of the rillet web console.
//   node drive.js '<json>'   one job: {url, steps: [...], screenshot, texts: {name: selector}}
//   node drive.js --serve    one browser for many jobs: a job per stdin line, a result per
//                            stdout line (a test module launches Chromium once, not per page)
// steps: {fill: selector, value}, {select: selector, value}, {click: selector},
//        {wait: selector}, {waitText: selector, text}
// A result is {texts: {name: innerText}, errors: [page errors]}, or {failure: "..."} when
// serving; a single job prints the result and exits 1 with the error on stderr otherwise.
"use strict";
const readline = require("readline");
const { chromium } = require("playwright-core");

function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

async function run(browser, job) {
  // a fresh context per job: no cookies, storage or cache carried from the previous page
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(job.timeout_ms || 30000);
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(job.url);
    await page.waitForSelector("body[data-page]");
    for (const s of job.steps || []) {
      if (s.fill) await page.fill(s.fill, s.value);
      else if (s.select) await page.selectOption(s.select, s.value);
      else if (s.click) await page.click(s.click);
      else if (s.wait) await page.waitForSelector(s.wait);
      else if (s.waitText) await page.waitForFunction(
        ([sel, text]) => { const el = document.querySelector(sel); return el && el.innerText.includes(text); },
        [s.waitText, s.text]);
    }
    const texts = {};
    for (const [name, sel] of Object.entries(job.texts || {}))
      texts[name] = await page.locator(sel).first().innerText();
    if (job.screenshot) await page.screenshot({ path: job.screenshot, fullPage: true });
    return { texts, errors };
  } finally {
    await context.close();
  }
}

async function serve() {
  const browser = await launch();
  try {
    for await (const line of readline.createInterface({ input: process.stdin })) {
      if (!line.trim()) continue;
      let result;
      try {
        result = await run(browser, JSON.parse(line));
      } catch (e) {
        result = { failure: String(e && e.stack || e) };
      }
      process.stdout.write(JSON.stringify(result) + "\n");
    }
  } finally {
    await browser.close();
  }
}

async function single() {
  const browser = await launch();
  try {
    process.stdout.write(JSON.stringify(await run(browser, JSON.parse(process.argv[2]))));
  } finally {
    await browser.close();
  }
}

(process.argv[2] === "--serve" ? serve() : single())
  .catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
