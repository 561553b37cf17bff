#!/usr/bin/env node
// dev-server — for UI development only: serves web/ and answers the API of
// /work/notes/api-spec.md (web/openapi.json) with sample data held in
// memory, including the events and console WebSockets (a fake shell).
// The e2e tests run against the real `cyrange serve`; this is a stand-in.
// Usage: node web/tools/dev-server.mjs [port]   (users alice/alice team 1,
// bob/bob team 2, ian/ian instructor, olga/olga observer)
import http from 'node:http';
import crypto from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join, extname, dirname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
const PORT = Number(process.argv[2] || process.env.PORT || 8088);
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.svg': 'image/svg+xml' };
const now = () => Date.now();
const T0 = now() - 40 * 60000;

const users = {
  alice: { id: 1, name: 'alice', role: 'member', team: 1, password: 'alice' },
  bob: { id: 2, name: 'bob', role: 'member', team: 2, password: 'bob' },
  ian: { id: 3, name: 'ian', role: 'instructor', team: 0, password: 'ian' },
  olga: { id: 4, name: 'olga', role: 'observer', team: 0, password: 'olga' },
};
const sessions = new Map();
const TEAMS = [1, 2];
const template = { sections: [
  { id: 'detection', title: 'Detection', prompt: 'What did you observe, where and when?', rubric: [{ criterion: 'Timeline of events', points: 5 }, { criterion: 'Indicators named', points: 5 }] },
  { id: 'response', title: 'Response', prompt: 'How did you contain it?', rubric: [{ criterion: 'Containment', points: 5 }] },
  { id: 'reporting', title: 'Reporting', prompt: 'Whom did you inform?', rubric: [{ criterion: 'Stakeholders', points: 5 }] },
  { id: 'recovery', title: 'Recovery', prompt: 'How did you restore service?', rubric: [{ criterion: 'Restoration', points: 5 }] },
] };
const exercise = { id: 'dev', scenario: { id: 'targeted-mail', title: 'Targeted mail (dev sample)', description: 'sample', level: 'A', duration_ms: 7200000, speed: 1 }, state: process.env.DEV_STATE || 'running', started_ms: T0, report_template: template };
const steps = [
  ['recon', 'scan', 'attacker', 'web', 2], ['phish', 'phishing', 'attacker', 'pc1', 6], ['beacon', 'c2_beacon', 'pc1', 'c2', 12],
  ['lateral', 'lateral_movement', 'pc1', 'file', 25], ['exfil', 'exfiltration', 'file', 'c2', 38], ['deface', 'defacement', 'attacker', 'web', 55],
];
function segmentsOf() {
  return [
    { name: 'internet', cidr: '198.18.0.0/24', role: 'internet', bridge: 'cyb1i' },
    { name: 'dmz', cidr: '198.18.1.0/24', role: 'dmz', bridge: 'cyb1d' },
    { name: 'lan', cidr: '198.18.2.0/24', role: 'office', bridge: 'cyb1l' },
  ];
}
const state = {};
for (const team of TEAMS) {
  state[team] = {
    clock: 'running', hosts: [
      { name: 'fw', role: 'router', image: 'router', addresses: [{ segment: 'internet', address: '198.18.0.2' }, { segment: 'dmz', address: '198.18.1.1' }, { segment: 'lan', address: '198.18.2.1' }], services: [{ name: 'proxy', proto: 'tcp', port: 3128 }, { name: 'dhcp', proto: 'udp', port: 67 }], state: 'running', agent: true, health: null },
      { name: 'web', role: 'server', image: 'server', addresses: [{ segment: 'dmz', address: '198.18.1.10' }], services: [{ name: 'http', proto: 'tcp', port: 80 }], state: 'running', agent: true, health: null },
      { name: 'mail', role: 'server', image: 'server', addresses: [{ segment: 'dmz', address: '198.18.1.25' }], services: [{ name: 'smtp', proto: 'tcp', port: 25 }], state: team === 2 ? 'crashed' : 'running', agent: team !== 2, health: null },
      { name: 'file', role: 'server', image: 'server', addresses: [{ segment: 'lan', address: '198.18.2.5' }], services: [{ name: 'smb', proto: 'tcp', port: 445 }], state: 'running', agent: true, health: null },
      { name: 'pc1', role: 'workstation', image: 'office', addresses: [{ segment: 'lan', address: '198.18.2.100' }], services: [], state: 'running', agent: true, health: null },
      { name: 'attacker', role: 'attacker', image: 'attacker', addresses: [{ segment: 'internet', address: '198.18.0.66' }], services: [], state: 'running', agent: true, health: null },
    ],
    steps: steps.map(([id, action, actor, target, min]) => ({ id, action, actor, target, due_ms: min * 60000, started_ms: T0 + min * 60000 < now() ? T0 + min * 60000 : null, state: T0 + min * 60000 < now() ? 'succeeded' : 'scheduled', outcome: T0 + min * 60000 < now() ? 'succeeded' : null, detail: '' })),
    findings: [], reports: [], events: [],
    inbox: [{ id: team * 100 + 1, step: 'press', ts_ms: T0 + 20 * 60000, deadline_ms: 30 * 60000, from: 'press@example.test', channel: 'mail', subject: 'Press inquiry about a leak', body: 'A journalist asks whether customer data was leaked. Draft the answer you would send.', points: 10, responses: [] }],
    analysis: null,
    series: [[T0, 0], [T0 + 10 * 60000, 12], [T0 + 20 * 60000, 25 + team * 3], [now() - 60000, 31 + team * 4]],
  };
}
let seq = 0; let ids = 1;
function addEvent(team, type, summary) { state[team].events.push({ seq: ++seq, ts_ms: now(), type, summary }); }
addEvent(1, 'inject', 'Press inquiry about a leak'); addEvent(2, 'inject', 'Press inquiry about a leak');

// ---- WebSocket (RFC 6455, just enough) ----
function wsAccept(req, socket) {
  const key = req.headers['sec-websocket-key'];
  const acc = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acc}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  const ws = {
    onmessage: null,
    send(data, binary) {
      const payload = Buffer.isBuffer(data) ? data : Buffer.from(data);
      const len = payload.length;
      const head = len < 126 ? Buffer.from([binary ? 0x82 : 0x81, len]) : len < 65536 ? Buffer.from([binary ? 0x82 : 0x81, 126, len >> 8, len & 255]) : null;
      if (!head) { const hd = Buffer.alloc(10); hd[0] = binary ? 0x82 : 0x81; hd[1] = 127; hd.writeBigUInt64BE(BigInt(len), 2); socket.write(Buffer.concat([hd, payload])); return; }
      if (!socket.destroyed) socket.write(Buffer.concat([head, payload]));
    },
    close() { if (!socket.destroyed) { socket.write(Buffer.from([0x88, 0])); socket.end(); } },
  };
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15; let len = buf[1] & 127; let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; } else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const p = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < p.length; i++) p[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + len);
      if (op === 8) { ws.close(); return; }
      if (op === 9) { socket.write(Buffer.concat([Buffer.from([0x8a, p.length]), p])); continue; }
      if (ws.onmessage) ws.onmessage(p);
    }
  });
  socket.on('error', () => {});
  return ws;
}
const subscribers = new Set();
function broadcast(type, team, data, instructorsOnly) {
  const msg = JSON.stringify({ type, team, ts_ms: now(), data });
  for (const s of subscribers) {
    if (s.user.role === 'member' && (instructorsOnly || (team && team !== s.user.team))) continue;
    s.ws.send(msg);
  }
}

// A tiny fake shell per host: echo (with $((a+b))), hostname, ip, ls, uname.
const consoles = {};
function shellRun(host, line) {
  const cmd = line.trim();
  if (!cmd) return '';
  if (cmd.startsWith('echo')) return `${cmd.slice(4).trim().replace(/\$\(\((\d+)\s*([+*-])\s*(\d+)\)\)/g, (m, a, op, b) => String(op === '+' ? +a + +b : op === '-' ? a - b : a * b))}\r\n`;
  if (cmd === 'hostname') return `${host}\r\n`;
  if (cmd === 'uname -a') return 'Linux cyrange 6.1.0 x86_64 GNU/Linux\r\n';
  if (cmd === 'ls') return 'bin  etc  root  tmp  var\r\n';
  return `sh: ${cmd.split(/\s+/)[0]}: not found\r\n`;
}
function consoleAttach(team, host, ws) {
  const key = `${team}/${host}`;
  const c = consoles[key] || (consoles[key] = { line: '', scroll: `\r\nDebian GNU/Linux 12 ${host} ttyS0\r\n\r\nroot@${host}:~# `, viewers: new Set() });
  c.viewers.add(ws);
  ws.send(c.scroll, true);
  const out = (s) => { c.scroll = (c.scroll + s).slice(-65536); c.viewers.forEach((v) => v.send(s, true)); };
  ws.onmessage = (p) => {
    for (const ch of p.toString('utf8')) {
      if (ch === '\r') { out('\r\n'); out(shellRun(host, c.line)); c.line = ''; out(`root@${host}:~# `); } else if (ch === '\x7f') { if (c.line) { c.line = c.line.slice(0, -1); out('\b \b'); } } else if (ch >= ' ') { c.line += ch; out(ch); }
    }
  };
  return () => c.viewers.delete(ws);
}

// ---- HTTP ----
function send(res, status, body, headers = {}) {
  const data = body === null ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(data);
}
function fail(res, status, code, message) { send(res, status, { error: { status, code, message } }); }
function session(req) {
  const m = /cyrange_session=([^;]+)/.exec(req.headers.cookie || '');
  return m ? sessions.get(m[1]) : null;
}
async function body(req) {
  let s = '';
  for await (const c of req) s += c;
  return s ? JSON.parse(s) : {};
}
function scoreOf(team) {
  const st = state[team];
  const landed = st.steps.filter((x) => x.started_ms);
  const detectedSteps = landed.map((x) => {
    const f = st.findings.find((fd) => (fd.hosts || []).includes(x.target) || (fd.hosts || []).includes(x.actor));
    return { step: x.id, outcome: x.outcome, landed: true, detected: !!f, finding: f ? f.id : null, tier: f ? 'host_technique' : null, delay_ms: f ? Math.max(0, f.detected_ms - x.started_ms) : null, max: 6.7, credit: f ? 0.8 : 0, points: f ? 5.3 : 0 };
  });
  const det = detectedSteps.reduce((a, x) => a + x.points, 0);
  const rep = st.reports.filter((r) => r.state === 'accepted').length * 10;
  const inj = st.inbox.flatMap((i) => i.responses).reduce((a, r) => a + (r.points || 0), 0);
  const avail = team === 2 ? 18 : 27;
  const round = (x) => Math.round(x * 10) / 10;
  const out = {
    team, total: round(det + rep + inj + avail), max: 100,
    axes: {
      detection: { points: round(det), max: 40, items: detectedSteps.filter((x) => x.detected).map((x) => ({ points: x.points, reason: `step ${x.step} detected by finding #${x.finding} (host + technique, 80%)` })) },
      availability: { points: avail, max: 30, items: [{ points: avail, reason: team === 2 ? 'smtp check met its SLA 60% of the time' : 'every check met its SLA' }] },
      reports: { points: rep, max: 20, items: rep ? [{ points: rep, reason: 'report accepted' }] : [] },
      injects: { points: inj, max: 10, items: inj ? [{ points: inj, reason: 'press inquiry answered in time' }] : [] },
    },
    false_positives: { count: 0, points: 0 }, steps: detectedSteps, findings: [], precision: st.findings.length ? 1 : null, recall: landed.length ? round(detectedSteps.filter((x) => x.detected).length / landed.length) : null, reasons: [],
  };
  if (exercise.state !== 'finished') out.steps = out.steps.map(({ step, detected, finding, points }) => ({ step, detected, finding, points }));
  return out;
}

async function api(req, res, url) {
  const path = url.pathname;
  const m = req.method;
  if (path === '/api/login' && m === 'POST') {
    const b = await body(req);
    const u = users[b.name];
    if (!u || u.password !== b.password) return fail(res, 401, 'unauthenticated', 'bad credentials');
    const tok = crypto.randomBytes(16).toString('hex');
    const csrf = crypto.randomBytes(16).toString('hex');
    sessions.set(tok, { user: u, csrf });
    const { password, ...pub } = u;
    return send(res, 200, { user: pub, csrf }, { 'Set-Cookie': `cyrange_session=${tok}; HttpOnly; SameSite=Strict; Path=/` });
  }
  const s = session(req);
  if (!s) return fail(res, 401, 'unauthenticated', 'log in');
  const { password, ...me } = s.user;
  if (m !== 'GET' && req.headers['x-csrf-token'] !== s.csrf) return fail(res, 403, 'csrf', 'missing or wrong X-CSRF-Token');
  const role = me.role;
  if (path === '/api/logout') return send(res, 204, null, { 'Set-Cookie': 'cyrange_session=; Max-Age=0; Path=/' });
  if (path === '/api/me') return send(res, 200, { user: me, csrf: s.csrf, exercise: exercise.id });
  if (path === '/api/exercise') return send(res, 200, { ...exercise, teams: TEAMS.filter((t) => role !== 'member' || t === me.team).map((t) => ({ team: t, name: `Team ${t}` })) });
  if (path === '/api/timeline') {
    if (role === 'member') return fail(res, 403, 'forbidden', 'instructors only');
    return send(res, 200, { teams: TEAMS.map((t) => ({ team: t, clock: state[t].clock, elapsed_ms: now() - T0, speed: 1, steps: state[t].steps })) });
  }
  if (path === '/api/scoreboard') {
    if (role === 'member') return fail(res, 403, 'forbidden', 'instructors only');
    return send(res, 200, TEAMS.map((t) => { const sc = scoreOf(t); return { team: t, name: `Team ${t}`, total: sc.total, max: sc.max, axes: Object.fromEntries(Object.entries(sc.axes).map(([k, v]) => [k, v.points])) }; }));
  }
  if (path === '/api/control' && m === 'POST') {
    if (role !== 'instructor') return fail(res, 403, 'forbidden', 'instructors only');
    const b = await body(req);
    for (const t of b.team ? [b.team] : TEAMS) {
      const st = state[t];
      if (b.cmd === 'pause') st.clock = 'paused'; else if (b.cmd === 'resume' || b.cmd === 'start') st.clock = 'running';
      const step = st.steps.find((x) => x.id === b.step);
      if (step && b.cmd === 'skip') step.state = 'skipped';
      if (step && b.cmd === 'run') { step.state = 'succeeded'; step.started_ms = now(); step.outcome = 'succeeded'; }
      broadcast('timeline', t, { cmd: b.cmd }, true);
    }
    return send(res, 200, { ok: true, cmd: b.cmd });
  }
  let mm;
  if ((mm = /^\/api\/findings\/(\d+)$/.exec(path)) && m === 'PATCH') {
    if (role !== 'instructor') return fail(res, 403, 'forbidden', 'instructors only');
    const b = await body(req);
    for (const t of TEAMS) { const f = state[t].findings.find((x) => x.id === Number(mm[1])); if (f) { f.label = b.label === 'none' ? null : b.label; return send(res, 200, f); } }
    return fail(res, 404, 'not_found', 'no such finding');
  }
  if ((mm = /^\/api\/responses\/(\d+)\/grade$/.exec(path)) && m === 'POST') {
    if (role !== 'instructor') return fail(res, 403, 'forbidden', 'instructors only');
    const b = await body(req);
    for (const t of TEAMS) for (const i of state[t].inbox) { const r = i.responses.find((x) => x.id === Number(mm[1])); if (r) { r.points = b.points; r.grader = me.name; return send(res, 200, r); } }
    return fail(res, 404, 'not_found', 'no such response');
  }
  if (!(mm = /^\/api\/teams\/(\d+)(\/.*)$/.exec(path))) return fail(res, 404, 'not_found', 'no such route');
  const team = Number(mm[1]); const rest = mm[2];
  if (role === 'member' && team !== me.team) return fail(res, 403, 'forbidden', 'not your team');
  const st = state[team];
  if (!st) return fail(res, 404, 'not_found', 'no such team');
  const write = m !== 'GET';
  if (write && role === 'observer') return fail(res, 403, 'forbidden', 'observers do not write');
  if (rest === '/map') return send(res, 200, { team, segments: segmentsOf(), hosts: st.hosts, checks: [{ id: 'web-http', type: 'http', from: 'attacker', target: 'web', up: true, ok: 40, probes: 40, sla: 0.95, last_detail: '200 OK' }, { id: 'mail-smtp', type: 'tcp', from: 'pc1', target: 'mail', up: team !== 2, ok: team === 2 ? 24 : 40, probes: 40, sla: 0.9, last_detail: team === 2 ? 'connection refused' : 'connected' }] });
  if (rest === '/wire') return send(res, 200, { packets: 123456 * team, bytes: 98765432 * team, kernel_drops: 0, if_drops: 0, written: 123456 * team, files: 2, flows_active: 12, flows_finished: 345, captures: [] });
  if (rest === '/pcaps') return send(res, 200, [{ name: 'lan-0001.pcap', bytes: 1048576, modified_ms: now() - 300000 }, { name: 'dmz-0001.pcap', bytes: 524288, modified_ms: now() - 60000 }]);
  if ((mm = /^\/pcaps\/([\w.-]+\.pcap)$/.exec(rest))) {
    const hdr = Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex');
    res.writeHead(200, { 'Content-Type': 'application/vnd.tcpdump.pcap', 'Content-Disposition': `attachment; filename="${mm[1]}"` });
    return res.end(hdr);
  }
  if (rest.startsWith('/events')) return send(res, 200, st.events.filter((e) => e.seq > Number(url.searchParams.get('since') || 0)));
  if (rest === '/findings' && m === 'GET') return send(res, 200, st.findings);
  if (rest === '/findings' && m === 'POST') {
    const b = await body(req);
    const errs = [];
    if (!b.description) errs.push('description: required');
    if (!(b.hosts || []).length && !b.indicators && !b.flow && !b.community_id) errs.push('a finding must name at least one host, indicator, flow or community id');
    for (const [i, hname] of (b.hosts || []).entries()) if (!st.hosts.some((x) => x.name === hname || x.addresses.some((a) => a.address === hname))) errs.push(`hosts[${i}]: ${hname} is not a host of the range`);
    if (errs.length) return fail(res, 400, 'invalid', errs.join('; '));
    const f = { id: ids++, team, submitted_ms: now(), detected_ms: b.detected || now(), label: null, ...b };
    delete f.detected;
    st.findings.push(f);
    addEvent(team, 'finding', `#${f.id} ${f.description}`);
    broadcast('finding', team, f);
    return send(res, 201, f);
  }
  if (rest === '/reports' && m === 'GET') return send(res, 200, st.reports.map(({ id, title, state: rs, current_version, updated_ms }) => ({ id, title, state: rs, current_version, updated_ms })));
  if (rest === '/reports' && m === 'POST') {
    if (role !== 'member') return fail(res, 403, 'forbidden', 'members write reports');
    const b = await body(req);
    const r = { id: ids++, title: b.title, state: b.submit ? 'submitted' : 'draft', current_version: 1, updated_ms: now(), versions: [{ version: 1, sections: b.sections || {}, author: me.name, ts_ms: now(), submitted: !!b.submit }], reviews: [] };
    st.reports.push(r);
    addEvent(team, 'report', `${r.title} (${r.state})`);
    broadcast('report', team, { id: r.id, title: r.title, state: r.state });
    return send(res, 201, { id: r.id, version: 1 });
  }
  if ((mm = /^\/reports\/(\d+)(\/reviews)?$/.exec(rest))) {
    const r = st.reports.find((x) => x.id === Number(mm[1]));
    if (!r) return fail(res, 404, 'not_found', 'no such report');
    if (mm[2] && m === 'POST') {
      if (role !== 'instructor') return fail(res, 403, 'forbidden', 'instructors only');
      const b = await body(req);
      const rv = { id: ids++, version: b.version, reviewer: me.name, ts_ms: now(), comments: b.comments || [], grades: b.grades || {}, decision: b.decision };
      r.reviews.push(rv);
      if (b.decision === 'return') r.state = 'returned'; else if (b.decision === 'accept') r.state = 'accepted';
      r.updated_ms = now();
      addEvent(team, 'review', `${r.title}: ${b.decision}`);
      broadcast('review', team, { report: r.id, decision: b.decision });
      return send(res, 201, rv);
    }
    if (m === 'GET') return send(res, 200, r);
    if (m === 'PUT') {
      if (role !== 'member') return fail(res, 403, 'forbidden', 'members write reports');
      const b = await body(req);
      if (b.base_version !== r.current_version) return fail(res, 409, 'conflict', `base_version ${b.base_version} is stale (current ${r.current_version})`);
      r.current_version++;
      r.versions.push({ version: r.current_version, sections: b.sections || {}, author: me.name, ts_ms: now(), submitted: !!b.submit });
      r.title = b.title || r.title; r.state = b.submit ? 'submitted' : 'draft'; r.updated_ms = now();
      addEvent(team, 'report', `${r.title} (${r.state})`);
      broadcast('report', team, { id: r.id, title: r.title, state: r.state });
      return send(res, 200, { id: r.id, version: r.current_version });
    }
  }
  if (rest === '/inbox') return send(res, 200, st.inbox);
  if ((mm = /^\/inbox\/(\d+)\/responses$/.exec(rest)) && m === 'POST') {
    const inj = st.inbox.find((x) => x.id === Number(mm[1]));
    if (!inj) return fail(res, 404, 'not_found', 'no such inject');
    const b = await body(req);
    if (!b.text) return fail(res, 400, 'invalid', 'text: required');
    const r = { id: ids++, user: me.name, ts_ms: now(), text: b.text, points: null, grader: null };
    inj.responses.push(r);
    addEvent(team, 'response', inj.subject);
    broadcast('response', team, r);
    return send(res, 201, r);
  }
  if (rest === '/score') return send(res, 200, scoreOf(team));
  if (rest === '/scores/series') return send(res, 200, [...st.series, [now(), scoreOf(team).total]].map(([ts_ms, total]) => ({ ts_ms, total })));
  if (rest === '/analysis' && m === 'GET') return st.analysis ? send(res, 200, st.analysis) : send(res, 200, { team, items: [] });
  if (rest === '/analysis' && m === 'PUT') {
    const b = await body(req);
    st.analysis = { team, items: (b.items || []).map((x) => ({ ...x, author: me.name, updated_ms: now() })) };
    return send(res, 200, st.analysis);
  }
  return fail(res, 404, 'not_found', 'no such route');
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  try {
    if (url.pathname.startsWith('/api/')) return await api(req, res, url);
    let p = normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
    if (p === '/' || p === '\\') p = '/index.html';
    if (p.includes('node_modules') || p.startsWith('/tools')) return fail(res, 404, 'not_found', 'no such file');
    const file = join(WEB, p);
    await stat(file);
    res.writeHead(200, { 'Content-Type': MIME[extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-cache' });
    res.end(await readFile(file));
  } catch (e) {
    if (e instanceof SyntaxError) return fail(res, 400, 'bad_json', e.message);
    if (!res.headersSent) fail(res, 404, 'not_found', 'no such file');
  }
});
server.on('upgrade', (req, socket) => {
  const url = new URL(req.url, 'http://x');
  const s = session(req);
  const deny = () => { socket.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'); socket.destroy(); };
  if (!s) return deny();
  if (url.pathname === '/api/events') {
    const ws = wsAccept(req, socket);
    const sub = { ws, user: s.user };
    subscribers.add(sub);
    socket.on('close', () => subscribers.delete(sub));
    return undefined;
  }
  const m = /^\/api\/teams\/(\d+)\/hosts\/([\w-]+)\/console$/.exec(url.pathname);
  if (!m || s.user.role === 'observer' || (s.user.role === 'member' && s.user.team !== Number(m[1])) || !state[m[1]]) return deny();
  const ws = wsAccept(req, socket);
  const detach = consoleAttach(Number(m[1]), m[2], ws);
  socket.on('close', detach);
  return undefined;
});
server.listen(PORT, '127.0.0.1', () => console.log(`dev server on http://127.0.0.1:${PORT}/ (pid ${process.pid})`));
