// Opens a report page in headless Chromium, reads what the page shows and saves a
// full-page screenshot. Uses only Node's standard library: Chromium is driven over the
// DevTools protocol on a pipe (--remote-debugging-pipe: commands on fd 3, replies on fd 4,
// each a JSON message ended by a NUL byte), so no WebSocket client is needed.
//
// Usage: node scripts/report-browser.js CHROMIUM PAGE.html FRAGMENT SCREENSHOT.png
// FRAGMENT is what follows '#' ("event=$abc", "server=hs2", "t=45000", or "" for none).
// Prints one JSON object on stdout: the panel's event id, server or time, its state-table
// rows, its number of decision rows, the page's height, the screenshot's height, and any
// script errors the page raised.
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { pathToFileURL } = require("url");

const [chromium, page, fragment, screenshot] = process.argv.slice(2);
if (!chromium || !page || fragment === undefined || !screenshot) {
  console.error("usage: node report-browser.js CHROMIUM PAGE.html FRAGMENT SCREENSHOT.png");
  process.exit(2);
}
const WIDTH = 1500;
// Chromium cannot capture taller images than this in one piece.
const HEIGHT_MAX = 16000;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "mxsim-chromium-"));
const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage", "--hide-scrollbars",
  "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank",
], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
let stderr = "";
browser.stdio[2].on("data", (d) => { stderr += d; });

let nextId = 1;
const waiting = new Map();
const listeners = [];
let buffer = Buffer.alloc(0);
browser.stdio[4].on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  let end;
  while ((end = buffer.indexOf(0)) >= 0) {
    const message = JSON.parse(buffer.subarray(0, end).toString("utf8"));
    buffer = buffer.subarray(end + 1);
    if (message.id !== undefined && waiting.has(message.id)) {
      const { resolve, reject } = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.error) { reject(new Error(JSON.stringify(message.error))); } else { resolve(message.result); }
    } else {
      listeners.forEach((listener) => listener(message));
    }
  }
});
function send(method, params, sessionId) {
  const id = nextId++;
  const message = { id, method, params: params || {} };
  if (sessionId) { message.sessionId = sessionId; }
  browser.stdio[3].write(JSON.stringify(message) + "\0");
  return new Promise((resolve, reject) => { waiting.set(id, { resolve, reject }); });
}
function once(method, sessionId) {
  return new Promise((resolve) => {
    listeners.push(function listener(message) {
      if (message.method === method && message.sessionId === sessionId) {
        listeners.splice(listeners.indexOf(listener), 1);
        resolve(message.params);
      }
    });
  });
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const errors = [];
  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  listeners.push((message) => {
    if (message.sessionId === sessionId && message.method === "Runtime.exceptionThrown") {
      errors.push(message.params.exceptionDetails.exception
        ? message.params.exceptionDetails.exception.description
        : message.params.exceptionDetails.text);
    }
  });
  await send("Page.enable", {}, sessionId);
  await send("Runtime.enable", {}, sessionId);
  await send("Emulation.setDeviceMetricsOverride",
    { width: WIDTH, height: 1000, deviceScaleFactor: 1, mobile: false }, sessionId);
  const url = pathToFileURL(path.resolve(page)).href + (fragment ? "#" + fragment : "");
  const loaded = once("Page.loadEventFired", sessionId);
  const started = Date.now();
  await send("Page.navigate", { url }, sessionId);
  await loaded;
  const loadMs = Date.now() - started;
  await sleep(300);
  const read = `(() => {
    const panel = document.getElementById("panel");
    const event = document.querySelector("#panel-body .panel-event");
    const server = document.querySelector("#panel-body .panel-server");
    const time = document.querySelector("#panel-body .panel-time");
    const rows = Array.from(document.querySelectorAll("#panel-body table.state-changed tr")).slice(1)
      .map((tr) => Array.from(tr.children).map((td) => td.textContent));
    const selected = document.querySelector("g.node.selected");
    return {
      open: !!panel && panel.classList.contains("open"),
      event: event ? event.getAttribute("data-id") : null,
      server: server ? server.getAttribute("data-server") : null,
      time: time ? +time.getAttribute("data-t") : null,
      changed: rows,
      decisions: document.querySelectorAll("#panel-body table.decisions tr").length - 1,
      selected: selected ? (selected.getAttribute("data-id") || selected.getAttribute("data-ids")) : null,
      title: document.title,
      height: document.documentElement.scrollHeight,
    };
  })()`;
  const { result } = await send("Runtime.evaluate", { expression: read, returnByValue: true }, sessionId);
  const shown = result.value;
  // A full-page picture: the panel is fixed to the viewport, so close it first unless the
  // fragment asked for it, and scroll to the top.
  await send("Runtime.evaluate", { expression: "window.scrollTo(0, 0)" }, sessionId);
  const height = Math.min(shown.height, HEIGHT_MAX);
  await send("Emulation.setDeviceMetricsOverride",
    { width: WIDTH, height, deviceScaleFactor: 1, mobile: false }, sessionId);
  await sleep(200);
  // MXSIM_SHOT_Y and MXSIM_SHOT_H cut out one band of the page instead (for a closer look).
  const from = +(process.env.MXSIM_SHOT_Y || 0);
  const band = Math.min(+(process.env.MXSIM_SHOT_H || height), Math.max(1, shown.height - from));
  const picture = await send("Page.captureScreenshot",
    { format: "png", captureBeyondViewport: true, clip: { x: 0, y: from, width: WIDTH, height: band, scale: 1 } }, sessionId);
  fs.writeFileSync(screenshot, Buffer.from(picture.data, "base64"));
  shown.screenshot_height = height;
  shown.load_ms = loadMs;
  shown.errors = errors;
  process.stdout.write(JSON.stringify(shown) + "\n");
  await send("Browser.close").catch(() => {});
}

const timer = setTimeout(() => {
  console.error("timed out; chromium said:\n" + stderr);
  browser.kill("SIGKILL");
  process.exit(1);
}, 120000);
// The profile is removed once Chromium has exited (it writes there until then).
browser.on("exit", () => {
  try { fs.rmSync(profile, { recursive: true, force: true }); } catch (error) { /* left in tmp */ }
});
main().then(() => {
  clearTimeout(timer);
  setTimeout(() => { browser.kill("SIGKILL"); }, 200);
}, (error) => {
  console.error(error.stack + "\nchromium said:\n" + stderr);
  browser.kill("SIGKILL");
  process.exit(1);
});
