// The browser side of docs/images/screenshots.py, which runs it (read its docstring first).
// Usage: NODE_PATH=<dir>/node_modules node screenshots.mjs <base_url> <out_dir> '<shots as JSON>'
// Each shot is {"name", "path", "height", "text"}: the page at <base_url><path> in a window 1400 pixels wide
// and <height> high (the picture is the whole page) goes to <out_dir>/<name>.png. With a <text>, the shot
// waits until that text is visible and scrolls it into view first. Chromium is $CHROMIUM or /usr/bin/chromium,
// driven by the playwright-core npm package (found through NODE_PATH: an ES module import would not be).
import { createRequire } from "node:module";

const { chromium } = createRequire(import.meta.url)("playwright-core");
const [base, outDir, specs] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium" });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  for (const { name, path, height, text } of JSON.parse(specs)) {
    await page.setViewportSize({ width: 1400, height: Number(height || 1000) });
    await page.goto(base + path, { waitUntil: "networkidle", timeout: 60000 });
    if (text) {
      const target = page.getByText(text, { exact: true }).first();
      await target.waitFor({ state: "visible", timeout: 60000 });
      await target.scrollIntoViewIfNeeded();
    }
    await page.waitForTimeout(2500);
    await page.screenshot({ path: `${outDir}/${name}.png`, fullPage: true });
    console.log(`wrote ${outDir}/${name}.png from ${path}`);
  }
} finally {
  await browser.close();
}
