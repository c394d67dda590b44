// Drives headless Chromium (Debian's package) through one page of the rillet web console.
//   node drive.js '<json>'   with {url, steps: [...], screenshot, texts: {name: selector}}
// steps: {fill: selector, value}, {select: selector, value}, {click: selector},
//        {wait: selector}, {waitText: selector, text}
// Prints {texts: {name: innerText}} as JSON; exits 1 with the error on stderr otherwise.
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const job = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
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
    process.stdout.write(JSON.stringify({ texts, errors }));
  } finally {
    await browser.close();
  }
}
main().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
