// Serves the page on 127.0.0.1:0, opens it in headless Chromium (Debian's, driven by
// playwright-core), adds two participants through the form, checks that the table lists
// both and that an invalid phone number shows the field violation, and saves a
// screenshot. PARTICIPANTS_ADDR is the facade (started with --cors-allow-origin).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = fileURLToPath(new URL(".", import.meta.url));
const api = `http://${process.env.PARTICIPANTS_ADDR ?? "127.0.0.1:50051"}`;
const screenshot = process.env.SCREENSHOT ?? join(here, "screenshot.png");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

function fail(what) {
  console.error(`examples/browser: FAILED: ${what}`);
  process.exit(1);
}

// The page and its bundle, nothing else.
const files = { "/": "index.html", "/index.html": "index.html", "/app.js": "dist/app.js" };
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };
const server = createServer(async (req, res) => {
  const file = files[new URL(req.url, "http://x").pathname];
  if (!file) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": types[extname(file)] }).end(await readFile(join(here, file)));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const page_url = `http://127.0.0.1:${server.address().port}/?api=${encodeURIComponent(api)}`;

// Flags for a closed network: no background traffic, no sandbox (root in CI).
const browser = await chromium.launch({
  executablePath,
  headless: true,
  timeout: 30_000,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
  page.setDefaultTimeout(15_000);
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  await page.goto(page_url);
  await page.waitForSelector("body[data-ready=yes]");

  const add = async (name, phone, calls) => {
    await page.fill("#name", name);
    await page.fill("#phone", phone);
    await page.click("#create");
    await page.waitForSelector(`body[data-calls="${calls}"]`);
  };
  const suffix = String(Date.now() % 1_000_000).padStart(6, "0");
  await add("Ada Lovelace", `+1555${suffix}1`, 1);
  await add("Alan Turing", `+1555${suffix}2`, 2);
  const names = await page.$$eval("#participants tr td:first-child", (cells) => cells.map((c) => c.textContent));
  if (names.join() !== "Ada Lovelace,Alan Turing") fail(`the table lists both, oldest first: ${names}`);

  await add("Nobody", "not-a-number", 3);
  const error = await page.textContent("#error");
  if (!error.includes("addresses[0].address")) fail(`the BadRequest's field is shown: ${error}`);
  // A CORS refusal would show up as a console error.
  if (consoleErrors.some((e) => e.includes("CORS"))) fail(`CORS errors: ${consoleErrors.join("; ")}`);

  await page.screenshot({ path: screenshot });
  console.log(`created 2 participants from the page; the invalid one showed: ${error}`);
  console.log(`screenshot: ${screenshot}`);
  console.log("examples/browser: OK");
} finally {
  await browser.close();
  server.close();
}
