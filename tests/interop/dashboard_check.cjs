// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loads the
// example dashboard from culex's http_dir, which connects back over MQTT over WebSockets
// with mqtt.js. Values are published with mosquitto_pub over TCP; the page must show
// them, and the broker's $SYS figures. A screenshot is saved either way.
//
//   NODE_PATH=.../node_modules node dashboard_check.cjs URL TCP_PORT SCREENSHOT VALUES_JSON
"use strict";

const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");

const [url, tcpPort, screenshot, valuesJson] = process.argv.slice(2);
const values = JSON.parse(valuesJson); // [[topic, value], ...], in publishing order
const TIMEOUT = 15000;

function publish(topic, value) {
  execFileSync("mosquitto_pub", ["-h", "127.0.0.1", "-p", tcpPort, "-q", "1", "-t", topic, "-m", value],
    { timeout: 10000 });
}

(async () => {
  let failed = 0;
  const check = async (name, fn) => {
    try {
      await fn();
      console.log(`PASS ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.message.split("\n")[0]}`);
    }
  };
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    // The CI runs as root, where Chromium's sandbox cannot start.
    args: ["--no-sandbox"],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  try {
    await check("dashboard-page-loads-over-http_dir", async () => {
      const response = await page.goto(url, { timeout: TIMEOUT });
      if (!response || response.status() !== 200) throw new Error(`status ${response && response.status()}`);
      const type = response.headers()["content-type"] || "";
      if (!type.startsWith("text/html")) throw new Error(`content-type ${type}`);
    });
    await check("dashboard-connects-and-subscribes-over-websockets", async () => {
      await page.waitForSelector('#status[data-state="connected"][data-subscribed="yes"]', { timeout: TIMEOUT });
    });
    for (const [topic, value] of values) publish(topic, value);
    const expected = new Map(values); // the last value of each topic
    await check("dashboard-shows-published-sensor-values", async () => {
      await page.waitForFunction((want) => want.every(([t, v]) => {
        const row = document.querySelector(`#sensors tr[data-topic="${t}"] td.value`);
        return row && row.textContent === v;
      }), [...expected], { timeout: TIMEOUT });
      const rows = await page.$$eval("#sensors tbody tr", (trs) => trs.map((tr) => tr.dataset.topic));
      const sorted = [...expected.keys()].sort();
      if (JSON.stringify(rows) !== JSON.stringify(sorted)) throw new Error(`rows ${rows} != ${sorted}`);
    });
    await check("dashboard-shows-sys-figures", async () => {
      await page.waitForFunction(() => {
        const n = (id) => Number(document.getElementById(id).textContent);
        return /version [0-9]/.test(document.getElementById("sys-version").textContent) &&
          n("sys-clients-connected") >= 1 && n("sys-messages-received") > 0 &&
          /^[0-9]+ seconds$/.test(document.getElementById("sys-uptime").textContent);
      }, null, { timeout: TIMEOUT });
    });
    await check("dashboard-has-a-bridge-panel", async () => {
      const panel = await page.$("#bridges thead");
      if (!panel) throw new Error("no #bridges table");
    });
    await check("dashboard-has-no-script-errors", async () => {
      if (problems.length) throw new Error(problems.join("; "));
    });
  } finally {
    await page.screenshot({ path: screenshot, fullPage: true }).catch((e) => {
      failed++;
      console.log(`FAIL dashboard-screenshot: ${e.message}`);
    });
    console.log(`dashboard: screenshot ${screenshot}`);
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.log(`FAIL dashboard: ${e.stack || e}`);
  process.exit(1);
});
