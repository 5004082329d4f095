// A headless Chromium (Debian's, at $CHROMIUM or /usr/bin/chromium) driven by playwright-core,
// commanded by a Rust test over stdin/stdout: one JSON request a line
// ({"op": ..., ...}), one JSON answer a line ({"ok": true, "value": ...} or
// {"ok": false, "error": "..."}). The scenario and its assertions live in the Rust test.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Playwright gives each launch a fresh temporary profile (--user-data-dir).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage'],
});
let context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
let page = await context.newPage();
const problems = [];
function watch(p) {
  p.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  p.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
}
watch(page);

const ops = {
  async newContext() {
    await context.close();
    context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
    page = await context.newPage();
    watch(page);
  },
  goto: ({ url }) => page.goto(url, { waitUntil: 'domcontentloaded' }).then((r) => r && r.status()),
  url: () => page.url(),
  click: ({ sel }) => page.click(sel, { timeout: 30000 }),
  fill: ({ sel, value }) => page.fill(sel, value, { timeout: 30000 }),
  select: ({ sel, value }) => page.selectOption(sel, value, { timeout: 30000 }),
  press: ({ key }) => page.keyboard.press(key),
  focus: ({ sel }) => page.focus(sel, { timeout: 30000 }),
  wait: ({ sel, state, timeout }) => page.waitForSelector(sel, { state: state || 'visible', timeout: timeout || 60000 }).then(() => true),
  // Polls with page.evaluate (CDP's evaluation, which the page's CSP does not block, unlike
  // waitForFunction's `new Function`).
  async waitFn({ js, timeout }) {
    const end = Date.now() + (timeout || 60000);
    for (;;) {
      if (await page.evaluate(js)) return true;
      if (Date.now() > end) throw new Error(`timed out waiting for: ${js}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  },
  text: ({ sel }) => page.textContent(sel, { timeout: 30000 }),
  eval: ({ js }) => page.evaluate(js),
  screenshot: ({ path, full }) => page.screenshot({ path, fullPage: !!full }).then(() => path),
  // A request from inside the page: same origin, with the page's cookies.
  fetch: ({ url, method, headers, body }) => page.evaluate(async ([u, m, h, b]) => {
    const r = await fetch(u, { method: m || 'GET', headers: h || {}, body: b, credentials: 'same-origin' });
    let json = null;
    try { json = await r.json(); } catch (_) { json = null; }
    return { status: r.status, json };
  }, [url, method, headers, body]),
  addCookie: ({ name, value, url }) => context.addCookies([{ name, value, url }]),
  cookies: () => context.cookies(),
  problems: () => problems.splice(0),
  async metrics() {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics');
    await cdp.detach();
    return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
  },
  browserPid: () => (browser.process && browser.process() ? browser.process().pid : null),
  async close() { await browser.close(); return true; },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let answer;
  try {
    const req = JSON.parse(line);
    const f = ops[req.op];
    if (!f) throw new Error(`unknown op ${req.op}`);
    const value = await f(req);
    answer = { ok: true, value: value === undefined ? null : value };
    if (req.op === 'close') { process.stdout.write(`${JSON.stringify(answer)}\n`); break; }
  } catch (e) {
    answer = { ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await browser.close().catch(() => {});
process.exit(0);
