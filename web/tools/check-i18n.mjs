#!/usr/bin/env node
// check-i18n — every i18n key the UI uses is in both catalogues
// (web/i18n/en.json, web/i18n/ja.json), every catalogue key is used, the
// two catalogues have the same keys and the same {placeholders}, and no
// call builds a key at run time (t() must be given a string literal).
// Usage: node web/tools/check-i18n.mjs [web-dir]; exit status 1 on a problem.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.argv[2] || join(dirname(fileURLToPath(import.meta.url)), '..');
const SKIP = new Set(['node_modules', 'vendor', 'tools', 'i18n']);

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { if (!SKIP.has(name)) walk(p, out); } else if (/\.(m?js|html)$/.test(name)) out.push(p);
  }
  return out;
}

// Removes comments so that examples in them are not taken for uses.
function stripComments(src, html) {
  if (html) return src.replace(/<!--[\s\S]*?-->/g, '');
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const problems = [];
const used = new Map();
function use(key, where) { if (!used.has(key)) used.set(key, []); used.get(key).push(where); }

for (const file of walk(root)) {
  const rel = relative(root, file);
  const html = file.endsWith('.html');
  const src = stripComments(readFileSync(file, 'utf8'), html);
  const lineOf = (i) => src.slice(0, i).split('\n').length;
  if (html) {
    for (const m of src.matchAll(/data-i18n(?:-placeholder|-title)?="([^"]*)"/g)) use(m[1], `${rel}:${lineOf(m.index)}`);
    continue;
  }
  for (const m of src.matchAll(/\bt\(\s*(['"])((?:(?!\1).)*)\1/g)) use(m[2], `${rel}:${lineOf(m.index)}`);
  // lib/i18n.js is t() itself: its own calls pass keys through.
  if (rel !== join('lib', 'i18n.js')) for (const m of src.matchAll(/\bt\(\s*(?!['"])/g)) problems.push(`${rel}:${lineOf(m.index)}: t() without a string literal key (keys must be written out)`);
  for (const m of src.matchAll(/dataset\.i18n\w*\s*=|data-i18n/g)) {
    if (!/el\.dataset\.i18n|\[data-i18n/.test(src.slice(m.index - 20, m.index + 30))) problems.push(`${rel}:${lineOf(m.index)}: data-i18n set from JS (write t('key') instead)`);
  }
}

const cats = {};
for (const lang of ['en', 'ja']) {
  const p = join(root, 'i18n', `${lang}.json`);
  try { cats[lang] = JSON.parse(readFileSync(p, 'utf8')); } catch (e) { problems.push(`${relative(root, p)}: ${e.message}`); cats[lang] = {}; }
}

const placeholders = (s) => [...String(s).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
for (const [key, where] of [...used].sort()) {
  for (const lang of Object.keys(cats)) {
    if (!(key in cats[lang])) problems.push(`i18n/${lang}.json: missing "${key}" (used at ${where.join(', ')})`);
  }
}
for (const lang of Object.keys(cats)) {
  for (const [key, value] of Object.entries(cats[lang])) {
    if (!used.has(key)) problems.push(`i18n/${lang}.json: "${key}" is not used`);
    if (typeof value !== 'string' || !value.trim()) problems.push(`i18n/${lang}.json: "${key}" is empty`);
  }
}
for (const key of Object.keys(cats.en)) {
  if (key in cats.ja && placeholders(cats.en[key]) !== placeholders(cats.ja[key])) {
    problems.push(`i18n: "${key}" has placeholders {${placeholders(cats.en[key])}} in en and {${placeholders(cats.ja[key])}} in ja`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`check-i18n: ${problems.length} problem(s), ${used.size} keys used`);
  process.exit(1);
}
console.log(`check-i18n: ${used.size} keys, en and ja complete`);
