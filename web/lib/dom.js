// dom — tiny helpers to build DOM nodes.  Text always goes in as text nodes,
// so nothing the API returns is ever parsed as HTML.
import { t, getLang } from './i18n.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs, children, svg) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class' && !svg) el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (!svg && (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function h(tag, attrs, ...children) { return apply(document.createElement(tag), attrs, children, false); }
export function s(tag, attrs, ...children) { return apply(document.createElementNS(SVG_NS, tag), attrs, children, true); }

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// Appends children like h() does: arrays flattened, null and false skipped
// (the DOM's own append would print an array as text).
export function add(el, ...children) { return apply(el, null, children, false); }

// Replaces the children of `el`.
export function fill(el, ...children) { return add(clear(el), ...children); }

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toLocaleString(getLang() === 'ja' ? 'ja-JP' : 'en-GB', { hour12: false });
}

export function fmtClock(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toLocaleTimeString(getLang() === 'ja' ? 'ja-JP' : 'en-GB', { hour12: false });
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  const neg = ms < 0;
  let sec = Math.round(Math.abs(ms) / 1000);
  const hh = Math.floor(sec / 3600); sec -= hh * 3600;
  const mm = Math.floor(sec / 60); sec -= mm * 60;
  const p = (n) => String(n).padStart(2, '0');
  return `${neg ? '-' : ''}${hh ? `${hh}:${p(mm)}` : mm}:${p(sec)}`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}

export function fmtNum(n) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString(getLang() === 'ja' ? 'ja-JP' : 'en-GB', { maximumFractionDigits: 1 });
}

// A status word as a coloured badge; kind picks the colour.
export function badge(text, kind) { return h('span', { class: `badge badge-${kind || 'neutral'}` }, text); }

// The message for an API error, in the UI's language, with the server's
// own message (field-level detail) after it.
export function errorText(err) {
  const st = err && err.status;
  let head;
  if (st === 401) head = t('error.unauthenticated');
  else if (st === 403) head = t('error.forbidden');
  else if (st === 404) head = t('error.not_found');
  else if (st === 409) head = t('error.conflict');
  else if (st === 429) head = t('error.rate_limited');
  else if (st === 400) head = t('error.invalid');
  else if (st === 0) head = t('error.network');
  else head = t('error.server');
  return err && err.message ? `${head} ${err.message}` : head;
}

export function errorBox(err) { return h('div', { class: 'alert alert-error api-error', role: 'alert', dataset: { status: String((err && err.status) ?? '') } }, errorText(err)); }

export function splitList(text) {
  return String(text || '').split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

// Saves `data` as a file download in the browser.
export function download(name, data, type) {
  const blob = data instanceof Blob ? data : new Blob([data], { type: type || 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
