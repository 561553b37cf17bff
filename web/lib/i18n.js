// i18n — every visible string comes from web/i18n/<lang>.json through t().
// tools/check-i18n.mjs finds the keys by looking for t('literal') calls and
// data-i18n attributes, so keys are always written out in full, never built.

const LANGS = ['en', 'ja'];
let lang = 'en';
let catalogue = {};
let fallback = {};

async function load(code) {
  const res = await fetch(`/i18n/${code}.json`, { cache: 'no-cache' });
  if (!res.ok) throw new Error(`i18n ${code}: HTTP ${res.status}`);
  return res.json();
}

export async function initI18n() {
  const saved = localStorage.getItem('cyrange.lang');
  const browser = (navigator.language || 'en').slice(0, 2);
  const want = LANGS.includes(saved) ? saved : (LANGS.includes(browser) ? browser : 'en');
  fallback = await load('en');
  await setLang(want);
}

export async function setLang(code) {
  if (!LANGS.includes(code)) code = 'en';
  catalogue = code === 'en' ? fallback : await load(code);
  lang = code;
  localStorage.setItem('cyrange.lang', code);
  document.documentElement.lang = code;
  translateStatic(document);
}

export function getLang() { return lang; }
export function languages() { return LANGS.slice(); }

// t('key', {name: value}) → the catalogue's text with {name} replaced.
// A missing key shows itself in brackets so it is seen, never hidden.
export function t(key, vars) {
  let s = catalogue[key] ?? fallback[key];
  if (s === undefined) return `[${key}]`;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

// Fills elements of static HTML marked data-i18n (text) and
// data-i18n-placeholder / data-i18n-title (attributes).
export function translateStatic(root) {
  root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  root.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
}
