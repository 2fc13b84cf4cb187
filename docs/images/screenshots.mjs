// Screenshots of the docs (the Required Actions page, the "Jules Fix" extra link), taken by docs/images/screenshots.py.
// Usage: node screenshots.mjs <base_url> <out_dir> <name>=<path>[=<viewport height>[=<text>]] ...   (needs playwright-core and chromium)
// With <text>, the shot waits until that text is visible and scrolls it into view first.
import { chromium } from "playwright-core";

const [base, outDir, ...shots] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium" });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  for (const shot of shots) {
    const [name, path, height, text] = shot.split("=");
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
