// console — a guest's serial console in the browser: xterm.js (from
// /vendor/, installed by `make web-deps`) bound to the console WebSocket.
// Bytes go both ways unchanged; the server replays 64 KiB of scroll-back.
import { h, clear, errorBox, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath, wsUrl } from '../lib/api.js';
import { pageHead } from './common.js';

function loadCss(href) {
  if (document.querySelector(`link[href="${href}"]`)) return;
  document.head.append(h('link', { rel: 'stylesheet', href }));
}

export async function render(ctx) {
  const host = ctx.args[0];
  let map;
  try { map = await api.get(teamPath(ctx.team, 'map')); } catch (err) { add(ctx.el, pageHead(ctx, t('console.title')), errorBox(err)); return; }
  const hosts = (map.hosts || []).map((x) => x.name);
  const tabs = h('nav', { class: 'tabs' }, hosts.map((name) =>
    h('a', { href: `#/team/${ctx.team}/console/${encodeURIComponent(name)}`, class: name === host ? 'active' : '' }, name)));
  add(ctx.el, pageHead(ctx, host ? t('console.title_host', { host }) : t('console.title')), tabs);
  if (!host) { add(ctx.el, h('p', { class: 'muted' }, t('console.pick'))); return; }

  let xterm; let fit;
  try {
    [xterm, fit] = await Promise.all([import('/vendor/xterm/xterm.mjs'), import('/vendor/xterm/addon-fit.mjs')]);
  } catch {
    add(ctx.el, h('div', { class: 'alert alert-error' }, t('console.no_xterm')));
    return;
  }
  if (!ctx.alive()) return;
  loadCss('/vendor/xterm/xterm.css');
  const status = h('span', { class: 'console-status', dataset: { state: 'connecting' } }, t('console.connecting'));
  const reconnect = h('button', { class: 'btn btn-small', hidden: true }, t('console.reconnect'));
  const screen = h('div', { class: 'console-screen' });
  add(ctx.el, h('div', { class: 'console-bar' }, status, reconnect, h('span', { class: 'muted small' }, t('console.hint'))), screen);

  const term = new xterm.Terminal({
    cursorBlink: true, convertEol: false, scrollback: 5000, fontSize: 15,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Noto Sans Mono CJK JP", monospace',
    theme: { background: '#101418', foreground: '#e6e6e6' },
  });
  const fitter = new fit.FitAddon();
  term.loadAddon(fitter);
  term.open(screen);
  fitter.fit();
  const onResize = () => fitter.fit();
  window.addEventListener('resize', onResize);

  const enc = new TextEncoder();
  let ws = null;
  let closing = false;
  function setStatus(st, text) { status.dataset.state = st; status.textContent = text; reconnect.hidden = st !== 'closed'; }
  let opened = false;
  function connect() {
    opened = false;
    setStatus('connecting', t('console.connecting'));
    ws = new WebSocket(wsUrl(`${teamPath(ctx.team, 'hosts', host)}/console`));
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => { opened = true; setStatus('open', t('console.connected')); term.focus(); };
    ws.onmessage = (m) => term.write(typeof m.data === 'string' ? m.data : new Uint8Array(m.data));
    ws.onclose = (e) => {
      ws = null;
      if (closing) return;
      // A refused upgrade (403, no such host) closes before it ever opened.
      const why = opened ? t('console.closed') : t('console.denied');
      setStatus('closed', e.reason ? `${why} (${e.reason})` : why);
    };
  }
  const sub = term.onData((data) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(data)); });
  reconnect.addEventListener('click', () => { term.reset(); connect(); });
  connect();
  ctx.cleanup(() => {
    closing = true;
    window.removeEventListener('resize', onResize);
    sub.dispose();
    if (ws) ws.close();
    term.dispose();
    clear(screen);
  });
}
