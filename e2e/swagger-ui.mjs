// Real-browser test of the Swagger UI at /docs: Debian's Chromium driven by playwright-core.
// Usage: BASE_URL=http://127.0.0.1:8000 SCREENSHOT_DIR=target/e2e/screenshots node swagger-ui.mjs
// EXTRA_OPERATIONS='[["POST", "/revoke", "Revoke Token"]]' lists the operations a configured
// server shows after the tutorial's three. SCOPES='{"me": "...", "items": "..."}' (the server's
// SCOPES) checks scopes mode instead: the scopes as checkboxes, the ticked ones in the token.
// (e2e/run.sh builds and starts the server and runs this). Exits non-zero on any failed check.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE_URL = (process.env.BASE_URL ?? '').replace(/\/+$/, '');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const EXTRA_OPERATIONS = JSON.parse(process.env.EXTRA_OPERATIONS ?? '[]');
const SCOPES = process.env.SCOPES ? JSON.parse(process.env.SCOPES) : null;
const TIMEOUT = 15_000;
if (!BASE_URL || !SCREENSHOT_DIR) {
  console.error('usage: BASE_URL=http://127.0.0.1:PORT SCREENSHOT_DIR=dir node swagger-ui.mjs');
  process.exit(2);
}
const origin = new URL(BASE_URL).origin;
const started = Date.now();
mkdirSync(SCREENSHOT_DIR, { recursive: true });

let stage = 'start';
const step = (name) => {
  stage = name;
  console.log(`- ${name}`);
};

// A fresh, throwaway profile (--user-data-dir) for every run.
const profile = mkdtempSync(join(tmpdir(), 'e2e-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1000, height: 800 },
  });
} catch (error) {
  rmSync(profile, { recursive: true, force: true });
  console.error(`FAILED: cannot start Chromium at ${CHROMIUM} (apt-get install -y chromium)\n${error.message}`);
  process.exit(1);
}
context.setDefaultTimeout(TIMEOUT);
const page = context.pages()[0] ?? (await context.newPage());

// Every request the browser's pages make must go to the local server: the docs must work offline.
const requests = [];
const foreign = [];
context.on('request', (request) => {
  const url = request.url();
  requests.push(`${request.method()} ${url}`);
  if (!/^(data|blob):/.test(url) && new URL(url).origin !== origin) foreign.push(url);
});
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(String(error)));

const shot = async (file, options = {}) => {
  await page.screenshot({ path: join(SCREENSHOT_DIR, file), ...options });
  console.log(`  screenshot ${join(SCREENSHOT_DIR, file)}`);
};

const authorizeButton = page.locator('.auth-wrapper button.authorize');
const dialog = page.locator('.dialog-ux .modal-ux');
const logout = 'button.modal-btn.auth:text-is("Logout")';

/**
 * Opens the Authorize dialog, fills in the password flow's form and submits it; returns the
 * response to the token request (the dialog stays open).
 */
async function authorize(username, password, scopes = []) {
  await authorizeButton.click();
  await dialog.waitFor();
  await dialog.locator('#oauth_username').fill(username);
  await dialog.locator('#oauth_password').fill(password);
  for (const scope of scopes) {
    await scopeCheckbox(scope).locator('label').click();
    assert.ok(await scopeCheckbox(scope).locator('input').isChecked(), `the ${scope} checkbox is ticked`);
  }
  const answered = page.waitForResponse((r) => r.request().method() === 'POST');
  await dialog.locator('.auth-btn-wrapper button.authorize').click();
  const response = await answered;
  // tokenUrl "token" is relative: from /docs it must resolve to /token.
  assert.equal(response.url(), `${origin}/token`, 'the token request URL');
  const form = new URLSearchParams(response.request().postData() ?? '');
  assert.equal(form.get('grant_type'), 'password', 'grant_type sent to /token');
  assert.equal(form.get('username'), username, 'username sent to /token');
  if (SCOPES) assert.equal(form.get('scope') ?? '', scopes.join(' '), 'the ticked scopes sent to /token');
  return response;
}

/** The Authorize dialog's checkbox (input and label) for `scope`. */
const scopeCheckbox = (scope) =>
  dialog.locator('.checkbox').filter({ has: page.locator(`input[data-value="${scope}"]`) });

/** The claims of a JWT, unverified. */
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

/** With the dialog open and authorized, logs out and closes it. */
async function logoutAndClose() {
  await dialog.locator(logout).click();
  await dialog.locator('#oauth_username').waitFor();
  await closeDialog();
}

async function closeDialog() {
  await dialog.locator('button.btn-done').click();
  await dialog.waitFor({ state: 'detached' });
}

/** The operation block for `GET path`. */
const operation = (path) =>
  page.locator('.opblock.opblock-get').filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) });

/**
 * Expands GET `path` (if needed), clicks "Try it out" (if needed) and "Execute", waits for the
 * live response and returns the operation block and the status and JSON body shown in the page.
 */
async function execute(path) {
  const op = operation(path);
  if (!(await op.evaluate((el) => el.classList.contains('is-open')))) {
    await op.locator('.opblock-summary-control').click();
  }
  const tryOut = op.locator('button.try-out__btn');
  await tryOut.waitFor();
  if ((await tryOut.innerText()).trim() === 'Try it out') await tryOut.click();
  // Clear a previous result so we never read a stale one.
  const clear = op.locator('button.btn-clear');
  if (await clear.isVisible()) await clear.click();
  const live = op.locator('.live-responses-table');
  await live.waitFor({ state: 'detached' });
  const answered = page.waitForResponse((r) => r.url() === `${origin}${path}`);
  await op.locator('button.execute').click();
  const response = await answered;
  await live.waitFor();
  const row = live.locator('tbody tr.response').first();
  // The status cell reads e.g. "400" plus "Undocumented" when the code is not in the spec.
  const status = Number((await row.locator('td.response-col_status').innerText()).trim().split(/\s+/)[0]);
  const text = await row.locator('td.response-col_description pre').first().innerText();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`response body shown for ${path} is not JSON: ${JSON.stringify(text)}`);
  }
  const url = (await op.locator('.request-url pre').innerText()).trim();
  assert.equal(url, `${origin}${path}`, 'the request URL shown');
  return { op, status, body, response };
}

/** Screenshot of one operation block, from its header down to the live response shown. */
async function shotOperation(file, op) {
  await op.scrollIntoViewIfNeeded();
  const scroll = await page.evaluate(() => ({ x: window.scrollX, y: window.scrollY }));
  const block = await op.boundingBox();
  const live = await op.locator('.live-responses-table').boundingBox();
  const clip = { x: block.x + scroll.x, y: block.y + scroll.y, width: block.width, height: live.y + live.height - block.y + 8 };
  await shot(file, { fullPage: true, clip });
}

let failed = false;
try {
  step('(a) /docs shows the API, its operations and the Authorize button');
  const docs = await page.goto(`${BASE_URL}/docs`);
  assert.equal(docs.status(), 200, 'GET /docs status');
  assert.equal(await page.title(), 'OAuth2 JWT Server - Swagger UI');
  const info = page.locator('.information-container .info');
  await info.locator('h1.title').waitFor();
  const title = await info.locator('h1.title').innerText();
  assert.match(title, /^OAuth2 JWT Server\b/, 'API title');
  assert.equal((await info.locator('h1.title pre.version').first().innerText()).trim(), '0.1.0', 'API version');
  assert.match(title, /OAS 3\.1/, 'OpenAPI version badge');
  const description = await info.locator('.description').innerText();
  assert.match(description, /OAuth2 with Password \(and hashing\), Bearer with JWT tokens/, 'description');
  assert.match(description, /Authorize/, 'description mentions Authorize');
  const expected = [
    ['POST', '/token', 'Login For Access Token'],
    ['GET', '/users/me/', 'Read Users Me'],
    ['GET', '/users/me/items/', 'Read Own Items'],
    ...EXTRA_OPERATIONS,
  ];
  await page.locator('.opblock').nth(expected.length - 1).waitFor();
  const shown = await page.locator('.opblock').evaluateAll((blocks) =>
    blocks.map((b) => [
      b.querySelector('.opblock-summary-method')?.textContent.trim(),
      b.querySelector('.opblock-summary-path')?.getAttribute('data-path'),
      b.querySelector('.opblock-summary-description')?.textContent.trim(),
    ]),
  );
  assert.deepEqual(shown, expected, 'operations (method, path, summary)');
  await authorizeButton.waitFor();
  assert.match(await authorizeButton.innerText(), /Authorize/);
  await shot('01-docs.png');

  if (SCOPES) {
    await scopesMode();
  } else {
    await tutorialMode();
  }

  step('every request stayed on the local server');
  assert.deepEqual(foreign, [], 'requests to anything but the local server');
  assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
} catch (error) {
  failed = true;
  console.error(`\nFAILED at stage: ${stage}\n${error.stack ?? error}`);
  await shot('failure.png', { fullPage: true }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (failed) {
  console.error(`requests made:\n  ${requests.join('\n  ')}`);
  process.exit(1);
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`swagger-ui e2e: all checks passed in ${seconds} s (${requests.length} requests, all to ${origin})`);

/** The tutorial's flows: johndoe's routes, alice refused as inactive, a wrong password. */
async function tutorialMode() {
  step('(b) Authorize as johndoe/secret');
  let token = await authorize('johndoe', 'secret');
  assert.equal(token.status(), 200, 'POST /token for johndoe');
  await dialog.locator(logout).waitFor();
  assert.match(await dialog.innerText(), /Authorized/);
  assert.equal(await dialog.locator('.errors').count(), 0, 'no auth error in the dialog');
  await shot('02-authorized.png');
  await closeDialog();
  assert.equal(await authorizeButton.and(page.locator('.locked')).count(), 1, 'Authorize shows a closed lock');

  step('(b) GET /users/me/ answers 200 with johndoe');
  let me = await execute('/users/me/');
  assert.equal(me.status, 200, 'status shown for /users/me/');
  assert.deepEqual(me.body, {
    username: 'johndoe',
    email: 'johndoe@example.com',
    full_name: 'John Doe',
    disabled: false,
  });
  await shotOperation('03-me-200.png', me.op);

  step('(b) GET /users/me/items/ answers 200 with the item');
  const items = await execute('/users/me/items/');
  assert.equal(items.status, 200, 'status shown for /users/me/items/');
  assert.deepEqual(items.body, [{ item_id: 'Foo', owner: 'johndoe' }]);
  await shotOperation('04-items-200.png', items.op);

  step('(c) alice (disabled) gets 400 Inactive user');
  await authorizeButton.click();
  await dialog.waitFor();
  await logoutAndClose();
  token = await authorize('alice', 'secretalice');
  assert.equal(token.status(), 200, 'POST /token for alice');
  await dialog.locator(logout).waitFor();
  await closeDialog();
  me = await execute('/users/me/');
  assert.equal(me.status, 400, 'status shown for /users/me/ as alice');
  assert.deepEqual(me.body, { detail: 'Inactive user' });
  await shotOperation('05-alice-400.png', me.op);

  step('(d) a wrong password shows an auth error, and no token is sent afterwards');
  await authorizeButton.click();
  await dialog.waitFor();
  await logoutAndClose();
  token = await authorize('johndoe', 'wrong-password');
  assert.equal(token.status(), 401, 'POST /token with a wrong password');
  assert.deepEqual(await token.json(), { detail: 'Incorrect username or password' });
  const error = dialog.locator('.errors');
  await error.waitFor();
  const errorText = await error.innerText();
  assert.match(errorText, /auth\s+error/i, 'the dialog shows an auth error');
  assert.match(errorText, /Unauthorized/, 'the auth error names the 401');
  assert.equal(await dialog.locator(logout).count(), 0, 'not authorized');
  await dialog.locator('#oauth_password').waitFor();
  await shot('06-wrong-password.png');
  await closeDialog();
  assert.equal(await authorizeButton.and(page.locator('.unlocked')).count(), 1, 'Authorize shows an open lock');
  const sent = page.waitForRequest((r) => r.url() === `${origin}/users/me/`);
  me = await execute('/users/me/');
  assert.equal((await sent).headers().authorization, undefined, 'no Authorization header is sent');
  assert.equal(me.status, 401, 'status shown for /users/me/ without a token');
  assert.deepEqual(me.body, { detail: 'Not authenticated' });
  await shotOperation('07-unauthenticated-401.png', me.op);
}

/**
 * Scopes mode: the dialog offers SCOPES as checkboxes; a token carries the ticked ones, and each
 * route answers by its scopes; a disabled user and a wrong password get 400 at /token.
 */
async function scopesMode() {
  step('(s1) the Authorize dialog offers the scopes as checkboxes');
  await authorizeButton.click();
  await dialog.waitFor();
  const offered = await dialog.locator('.checkbox').evaluateAll((boxes) =>
    boxes.map((b) => [b.querySelector('p.name')?.textContent, b.querySelector('p.description')?.textContent]),
  );
  assert.deepEqual(offered, Object.entries(SCOPES), 'the scopes offered, in order, with their descriptions');
  assert.match(await dialog.innerText(), /Select which ones you want to grant/);
  await scopeCheckbox(Object.keys(SCOPES).at(-1)).scrollIntoViewIfNeeded();
  await shot('s01-scopes-offered.png');
  await closeDialog();

  step('(s2) with only "me" ticked: /users/me/ answers, /users/me/items/ needs "items"');
  let token = await authorize('johndoe', 'secret', ['me']);
  assert.equal(token.status(), 200, 'POST /token for johndoe');
  assert.equal(claims((await token.json()).access_token).scope, 'me', 'the token carries the ticked scope');
  await dialog.locator(logout).waitFor();
  await shot('s02-authorized-me.png');
  await closeDialog();
  const me = await execute('/users/me/');
  assert.equal(me.status, 200, 'status shown for /users/me/ with scope me');
  assert.equal(me.body.username, 'johndoe');
  let items = await execute('/users/me/items/');
  assert.equal(items.status, 401, 'status shown for /users/me/items/ with scope me');
  assert.deepEqual(items.body, { detail: 'Not enough permissions' });
  assert.equal(items.response.headers()['www-authenticate'], 'Bearer scope="items me"');
  await shotOperation('s03-items-401.png', items.op);

  step('(s3) with "me" and "items" ticked: both routes and /status/ answer');
  await authorizeButton.click();
  await dialog.waitFor();
  await logoutAndClose();
  token = await authorize('johndoe', 'secret', ['me', 'items']);
  assert.equal(token.status(), 200, 'POST /token for johndoe');
  assert.equal(claims((await token.json()).access_token).scope, 'me items', 'the token carries both');
  await closeDialog();
  items = await execute('/users/me/items/');
  assert.equal(items.status, 200, 'status shown for /users/me/items/ with both scopes');
  assert.deepEqual(items.body, [{ item_id: 'Foo', owner: 'johndoe' }]);
  await shotOperation('s04-items-200.png', items.op);
  const status = await execute('/status/');
  assert.equal(status.status, 200, 'status shown for /status/');
  assert.deepEqual(status.body, { status: 'ok' });

  step('(s4) alice (disabled) and a wrong password get 400 from /token');
  await authorizeButton.click();
  await dialog.waitFor();
  await logoutAndClose();
  for (const [username, password, detail] of [
    ['alice', 'secretalice', 'Inactive user'],
    ['johndoe', 'wrong-password', 'Incorrect username or password'],
  ]) {
    token = await authorize(username, password, ['me']);
    assert.equal(token.status(), 400, `POST /token for ${username}`);
    assert.deepEqual(await token.json(), { detail });
    const error = dialog.locator('.errors');
    await error.waitFor();
    assert.match(await error.innerText(), /auth\s+error/i, 'the dialog shows an auth error');
    assert.equal(await dialog.locator(logout).count(), 0, 'not authorized');
    await closeDialog();
  }
  await shot('s05-refused.png');
}
