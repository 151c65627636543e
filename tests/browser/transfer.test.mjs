// One cross-province transfer clicked through the UI in real Chromium, from 申请 to 调档, by five
// different users — the seed's procedure as people use it (issue 3).
//
// Runs against a fresh `xueji demo` server on a free port; builds nothing itself:
//
//   cd tests/browser && npm ci && XUEJI_BIN=../../target/debug/xueji node --test
//
// The browser is Debian's Chromium (/usr/bin/chromium, or CHROMIUM_BIN), driven by playwright-core;
// no browser is ever downloaded. Screenshots land in docs/screenshots/ (1366×900 viewport, whole
// page) with stable names, so that a changed page shows up as a changed file.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir, access } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
// XUEJI_SCREENSHOTS puts them elsewhere (e.g. to compare a run with the committed ones).
const SHOTS = process.env.XUEJI_SCREENSHOTS
  ? path.resolve(process.cwd(), process.env.XUEJI_SCREENSHOTS)
  : path.join(ROOT, 'docs', 'screenshots');
const XUEJI_BIN = process.env.XUEJI_BIN
  ? path.resolve(process.cwd(), process.env.XUEJI_BIN)
  : path.resolve(HERE, '../../target/debug/xueji');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const VIEWPORT = { width: 1366, height: 900 };
// Playwright's own timeouts for one action / one expectation; the whole test is well under this
// many times over.
const STEP_TIMEOUT = 15_000;

// Users of the demo dataset (see `xueji demo`'s banner).
const U = {
  henanAdmin: '4101050001-admin', // 金水区第一小学 学籍管理员 (sending school)
  tianheAdmin: '4401060001-admin', // 天河区第一小学 学籍管理员 (receiving school)
  tianheReviewer: '4401060001-reviewer', // 天河区第一小学 审核员
  tianheAuthority: 'edu440106', // 广州市天河区 学籍主管部门
  henanReviewer: '4101050001-reviewer', // 金水区第一小学 审核员
  henanAuthority: 'edu410105', // 郑州市金水区 学籍主管部门
};
const RECEIVING_SCHOOL = '天河区第一小学';
const GRADE = '三年级'; // grade code 13

let tmp; // temp dir: database, evidence file
let server; // the xueji child process
let serverLog = ''; // its stderr, shown when something fails
let password = 'Demo@2026'; // replaced by the one the banner prints
let base; // http://127.0.0.1:PORT
let browser;

// ---------------------------------------------------------------------------------------------
// The server

function stripAnsi(s) {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '');
}

/** Starts `xueji demo` on a free port; resolves with its URL once `/healthz` answers. */
async function startServer(dbPath) {
  await access(XUEJI_BIN, fsc.X_OK).catch(() => {
    throw new Error(`xueji binary not found at ${XUEJI_BIN} (build it with \`cargo build -p xueji\` or set XUEJI_BIN)`);
  });
  server = spawn(XUEJI_BIN, ['demo', '--db', dbPath, '--addr', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info' },
  });
  let stdout = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`xueji demo did not print its URL within 60 s:\n${serverLog}`)), 60_000);
    const look = () => {
      const m = /listening on (http:\/\/[0-9.]+:[0-9]+)/.exec(stripAnsi(serverLog));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    server.stderr.setEncoding('utf8');
    server.stderr.on('data', (d) => {
      serverLog += d;
      if (serverLog.length > 200_000) serverLog = serverLog.slice(-100_000);
      look();
    });
    server.stdout.setEncoding('utf8');
    server.stdout.on('data', (d) => {
      stdout += d;
      const m = /密码 password: ([^)\s]+)\)/.exec(stdout);
      if (m) password = m[1];
    });
    server.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`xueji demo exited early (code ${code}, signal ${signal}):\n${serverLog}`));
    });
    server.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`GET ${url}/healthz did not answer 200 within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The banner (with the password) is printed right after the `listening` line.
  await waitFor(() => /密码 password:/.test(stdout), 10_000).catch(() => {});
  return url;
}

async function waitFor(cond, ms) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    const s = server;
    // A server that ignores SIGTERM is killed for good.
    setTimeout(() => {
      if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    }, 3_000).unref();
  }
}

// Never leave the server behind, even when the runner is interrupted.
process.on('exit', () => {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    stopServer();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------
// Browser helpers

/** Runs one user's part in a fresh browser context (own cookies); logs out at the end. */
async function asUser(username, fn) {
  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  try {
    await login(page, username);
    await fn(page);
    await logout(page);
  } catch (e) {
    let where = '';
    try {
      where = `\n  user ${username} on ${page.url()}\n  page text:\n${(await page.locator('body').innerText()).slice(0, 3000)}`;
    } catch {
      // the page is gone
    }
    e.message += where;
    throw e;
  } finally {
    await context.close();
  }
}

async function login(page, username) {
  await page.goto(`${base}/login`);
  await page.getByRole('heading', { name: '用户登录' }).waitFor();
  await page.getByLabel('用户名').fill(username);
  await page.getByLabel('密码').fill(password);
  await page.getByRole('button', { name: '登录' }).click();
  await page.waitForURL(`${base}/`);
  await page.getByRole('heading', { name: '工作台' }).waitFor();
}

async function logout(page) {
  await page.locator('header .userbar').getByRole('button', { name: '退出' }).click();
  await page.waitForURL(`${base}/login`);
  await page.getByRole('heading', { name: '用户登录' }).waitFor();
}

/** Clicks an entry of the menu tree on the left. */
async function menu(page, label) {
  await page.locator('nav.menu').getByRole('link', { name: label, exact: true }).click();
  await page.locator('.crumbs').getByText(label, { exact: true }).waitFor();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

/** The status tag at the top of a transfer's detail page. */
function statusTag(page) {
  return page.locator('.toolbar .status-tag');
}

/** The row of the transfer `id` in a transfer table. */
function rowOf(page, id) {
  return page.locator('table.transfers tbody tr').filter({
    has: page.locator(`td a[href="/transfers/${id}"]`),
  });
}

/** Selects the transfer's row checkbox in a 审核 / 调档 list. */
async function selectRow(page, id) {
  const box = page.locator(`table.transfers input[type="checkbox"][name="id"][value="${id}"]`);
  await box.check();
  assert.equal(await box.isChecked(), true);
}

/** On a detail page: waits for the status tag to read `label`. */
async function expectStatus(page, label) {
  await statusTag(page).filter({ hasText: new RegExp(`^\\s*${label}\\s*$`) }).waitFor();
}

/** The 审核环节 table's rows as [环节, 审核结果]. */
async function steps(page) {
  const rows = page.locator('table.steps tbody tr');
  const n = await rows.count();
  const out = [];
  for (let i = 0; i < n; i++) {
    const cells = rows.nth(i).locator('td');
    out.push([(await cells.nth(0).innerText()).trim(), (await cells.nth(2).innerText()).trim()]);
  }
  return out;
}

/** 同意 through the 审核 form at the bottom of the detail page. */
async function approveOnDetail(page, id, opinion) {
  const form = page.locator('section#review');
  await form.getByLabel('审核意见').fill(opinion);
  await form.getByRole('button', { name: '同意', exact: true }).click();
  await page.waitForURL(`${base}/transfers/${id}?done=approve`);
  await page.locator('p.notice-ok').getByText('已保存审核结果（同意）').waitFor();
}

/** 同意 through the 审核 list's toolbar over the selected row; checks the batch result. */
async function approveInBatch(page, id, opinion) {
  await selectRow(page, id);
  await page.locator('#rowsel .opinion-bar').getByLabel('审核意见').fill(opinion);
  await page.locator('#rowsel .toolbar').getByRole('button', { name: '同意', exact: true }).click();
  const result = page.locator('section.batch-result');
  await result.getByRole('heading', { name: '同意：成功 1 条' }).waitFor();
  const line = result.locator('tbody tr').filter({ has: page.locator(`a[href="/transfers/${id}"]`) });
  await line.locator('.result-ok').getByText('成功').waitFor();
  // Decided: no longer waiting in this party's 待审核 list.
  assert.equal(await rowOf(page, id).count(), 0, 'the decided transfer is still in the 待审核 list');
}

/** Opens the transfer from a batch result and checks its status. */
async function openFromBatch(page, id, status) {
  await page.locator('section.batch-result').locator(`a[href="/transfers/${id}"]`).click();
  await page.waitForURL(`${base}/transfers/${id}`);
  await expectStatus(page, status);
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'xueji-browser-'));
  await mkdir(SHOTS, { recursive: true });
  base = await startServer(path.join(tmp, 'demo.db'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives the browser a fresh, empty --user-data-dir of its own.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    stopServer();
    if (server && server.exitCode === null && server.signalCode === null) {
      await new Promise((r) => {
        server.once('exit', r);
        setTimeout(r, 5_000).unref();
      });
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
});

test('跨省转学: five users click one transfer from 申请 to 调档', { timeout: 110_000 }, async () => {
  try {
    await transferFlow();
  } catch (e) {
    console.error(`--- xueji stderr (tail) ---\n${stripAnsi(serverLog).slice(-4000)}`);
    throw e;
  }
});

async function transferFlow() {
  // -- 0. A 河南 student of 三年级, as the sending school's administrator sees them. ------------
  let student; // { name, no }
  await asUser(U.henanAdmin, async (page) => {
    await menu(page, '学生名单');
    await page.getByRole('heading', { name: /学生名单/ }).waitFor();
    await page.locator('form.filters select[name="grade"]').selectOption({ label: GRADE });
    await page.locator('form.filters').getByRole('button', { name: '查询' }).click();
    await page.waitForURL(/\/students\?.*grade=13/);
    // The first student of 三年级 with no business under way.
    const rows = page.locator('table.grid tbody tr').filter({ has: page.locator('td.sel input') });
    await rows.first().waitFor();
    const n = await rows.count();
    for (let i = 0; i < n && !student; i++) {
      const cells = rows.nth(i).locator('td');
      const [no, name, grade, busy] = await Promise.all([
        cells.nth(1).innerText(),
        cells.nth(2).innerText(),
        cells.nth(6).innerText(),
        cells.nth(9).innerText(),
      ]);
      assert.equal(grade.trim(), GRADE);
      if (busy.trim() === '') student = { no: no.trim(), name: name.trim() };
    }
    assert.ok(student, 'no 三年级 student without business at 金水区第一小学');
    assert.notEqual(student.no, '');
  });

  // A small PDF as evidence (户籍证明).
  const pdf = path.join(tmp, '户籍证明.pdf');
  await writeFile(
    pdf,
    '%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n' +
      'trailer<</Root 1 0 R>>\n%%EOF\n',
  );

  // -- 1. The receiving school's administrator files the application. ------------------------
  let id;
  await asUser(U.tianheAdmin, async (page) => {
    await menu(page, '跨省转学申请');
    await page.getByRole('heading', { name: /跨省转学申请/ }).waitFor();
    const form = page.locator('form.entry');
    const province = form.getByLabel('转出省份');
    await province.selectOption('410000');
    assert.match(await province.locator('option:checked').innerText(), /^河南省/);
    await form.getByLabel('学生姓名').fill(student.name);
    await form.getByLabel('学籍号或身份证件号').fill(student.no);
    await form.getByLabel('转入年级').selectOption({ label: GRADE });
    // The first class of 三年级 that has room.
    const cls = form.locator(`#to_class_id optgroup[label="${GRADE}"] option:not([disabled])`).first();
    const classValue = await cls.getAttribute('value');
    assert.ok(classValue, `no ${GRADE} class with room at ${RECEIVING_SCHOOL}`);
    await form.getByLabel('转入班级').selectOption(classValue);
    await form.getByLabel('转学理由').fill('父母工作调动至广州市天河区，随父母迁居就读。');
    await form.getByLabel('佐证材料').setInputFiles(pdf);
    await form.getByRole('button', { name: '保存' }).click();

    await page.waitForURL(/\/transfers\/\d+\?done=filed$/);
    id = Number(/\/transfers\/(\d+)/.exec(page.url())[1]);
    await page.locator('p.notice-ok').getByText('转学申请已保存').waitFor();
    await expectStatus(page, '待转入学校审核');
    const info = page.locator('table.info');
    await info.getByText(student.name, { exact: true }).first().waitFor();
    await info.getByText('户籍证明.pdf').waitFor();
    assert.deepEqual(await steps(page), [
      ['转入学校', '待审核'],
      ['转入学籍主管部门', '未到达'],
      ['转出学校', '未到达'],
      ['转出学籍主管部门', '未到达'],
    ]);
    await shot(page, '01-apply.png');
  });

  // -- 2. The receiving school's reviewer: 审核 list → select → 明细 → 同意 on the detail page. ---
  await asUser(U.tianheReviewer, async (page) => {
    await menu(page, '跨省转学审核');
    await rowOf(page, id).waitFor();
    await selectRow(page, id);
    await page.locator('#rowsel .toolbar').getByRole('button', { name: '明细' }).click();
    await page.waitForURL(`${base}/transfers/${id}`);
    await expectStatus(page, '待转入学校审核');
    await approveOnDetail(page, id, '情况属实，本校三年级有学位，同意转入。');
    await expectStatus(page, '待转入学籍主管部门审核');
    assert.deepEqual((await steps(page)).map((s) => s[1]), ['同意', '待审核', '未到达', '未到达']);
    await shot(page, '02-school-review.png');
  });

  // -- 3. The receiving authority: toolbar 同意 over the selected row. -------------------------
  await asUser(U.tianheAuthority, async (page) => {
    await menu(page, '跨省转学审核');
    await rowOf(page, id).waitFor();
    await approveInBatch(page, id, '同意转入。');
    await shot(page, '03-authority-review.png');
    await openFromBatch(page, id, '待转出学校审核');
  });

  // -- 4. The sending school's reviewer: the row's link → 同意 on the detail page. -------------
  await asUser(U.henanReviewer, async (page) => {
    await menu(page, '跨省转学审核');
    await rowOf(page, id).getByRole('link', { name: student.name }).click();
    await page.waitForURL(`${base}/transfers/${id}`);
    await expectStatus(page, '待转出学校审核');
    await approveOnDetail(page, id, '学生在籍，无在办业务，同意转出。');
    await expectStatus(page, '待转出学籍主管部门审核');
    await shot(page, '04-sending-school-review.png');
  });

  // -- 5. The sending authority: toolbar 同意; approval ends. ---------------------------------
  await asUser(U.henanAuthority, async (page) => {
    await menu(page, '跨省转学审核');
    await rowOf(page, id).waitFor();
    await approveInBatch(page, id, '同意转出。');
    await shot(page, '05-sending-authority-review.png');
    await openFromBatch(page, id, '四方核办完成，待调档');
    assert.deepEqual((await steps(page)).map((s) => s[1]), ['同意', '同意', '同意', '同意']);
  });

  // -- 6. The receiving school pulls the file, prints the notice, finds the student at home. ---
  await asUser(U.tianheAdmin, async (page) => {
    await menu(page, '跨省转学调档');
    await rowOf(page, id).waitFor();
    await selectRow(page, id);
    await page.locator('#rowsel .toolbar').getByRole('button', { name: '调档', exact: true }).click();
    const result = page.locator('section.batch-result');
    await result.getByRole('heading', { name: '调档：成功 1 条' }).waitFor();
    await result.getByText(`已调档，学生已转入${RECEIVING_SCHOOL}`).waitFor();
    await openFromBatch(page, id, '已调档');
    await page.getByRole('heading', { name: '纸质学籍档案' }).waitFor();
    await shot(page, '06-pull-file.png');

    await page.getByRole('link', { name: '打印转学联系函' }).click();
    await page.waitForURL(`${base}/transfers/${id}/notice`);
    const sheet = page.locator('article.print-sheet');
    await sheet.getByRole('heading', { name: '转学联系函' }).waitFor();
    const text = await sheet.innerText();
    for (const s of [student.name, student.no, '金水区第一小学', RECEIVING_SCHOOL, GRADE]) {
      assert.ok(text.includes(s), `转学联系函 lacks ${s}`);
    }
    assert.equal(await sheet.locator('.sheet-table tbody tr').count(), 4);
    await shot(page, '07-notice.png');

    await menu(page, '学生名单');
    const filters = page.locator('form.filters');
    await filters.getByLabel('姓名/学籍号').fill(student.no);
    await filters.getByRole('button', { name: '查询' }).click();
    await page.locator('table.grid tbody').getByRole('link', { name: student.name }).click();
    await page.waitForURL(new RegExp(`/students/${student.no}$`));
    await page.getByRole('heading', { name: /电子学籍档案/ }).waitFor();
    const current = page.locator('table.info').nth(1);
    const school = current.locator('tr').filter({ hasText: '就读学校' }).locator('td').first();
    assert.match(await school.innerText(), new RegExp(`^${RECEIVING_SCHOOL}`));
    const grade = current.locator('tr').filter({ hasText: '年级' }).locator('td').first();
    assert.equal((await grade.innerText()).trim(), GRADE);
    await shot(page, '08-student-at-new-school.png');
  });
}
