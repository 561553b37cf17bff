// charts — small inline SVG charts drawn by hand (no chart library: the
// range has no internet and the charts are simple).
import { s, h } from './dom.js';

export const PALETTE = ['#1f5fa8', '#c2410c', '#15803d', '#7e22ce', '#b45309', '#0e7490', '#be123c', '#4d7c0f'];

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(width, height, pad) {
  return { x0: pad.l, x1: width - pad.r, y0: height - pad.b, y1: pad.t };
}

function axes(g, f, yMax, yFmt, ticks) {
  const out = [];
  for (let i = 0; i <= ticks; i++) {
    const v = (yMax * i) / ticks;
    const y = f.y0 - ((f.y0 - f.y1) * i) / ticks;
    out.push(s('line', { x1: f.x0, x2: f.x1, y1: y, y2: y, class: 'grid' }));
    out.push(s('text', { x: f.x0 - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, yFmt(v)));
  }
  out.push(s('line', { x1: f.x0, x2: f.x1, y1: f.y0, y2: f.y0, class: 'axis' }));
  g.append(...out);
}

// Lines over time: series [{name, color, points: [[x_ms, y], ...]}].
export function lineChart({ series, width = 720, height = 260, yMax, yFmt = String, xFmt = String, label }) {
  const pad = { l: 48, r: 16, t: 14, b: 30 };
  const f = frame(width, height, pad);
  const all = series.flatMap((x) => x.points);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label || '' });
  if (!all.length) return svg;
  const xs = all.map((p) => p[0]);
  let xMin = Math.min(...xs); let xMax = Math.max(...xs);
  if (xMax === xMin) xMax = xMin + 1;
  const top = niceMax(yMax ?? Math.max(...all.map((p) => p[1])));
  const X = (x) => f.x0 + ((x - xMin) / (xMax - xMin)) * (f.x1 - f.x0);
  const Y = (y) => f.y0 - (y / top) * (f.y0 - f.y1);
  const g = s('g');
  axes(g, f, top, yFmt, 4);
  for (let i = 0; i <= 4; i++) {
    const x = xMin + ((xMax - xMin) * i) / 4;
    g.append(s('text', { x: X(x), y: f.y0 + 18, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'tick' }, xFmt(x)));
  }
  series.forEach((se, i) => {
    const color = se.color || PALETTE[i % PALETTE.length];
    if (!se.points.length) return;
    // A score holds its value until the next sample: draw steps.
    let d = `M${X(se.points[0][0])},${Y(se.points[0][1])}`;
    for (let k = 1; k < se.points.length; k++) d += `H${X(se.points[k][0])}V${Y(se.points[k][1])}`;
    g.append(s('path', { d, fill: 'none', stroke: color, 'stroke-width': 2.5 }));
    const last = se.points[se.points.length - 1];
    g.append(s('circle', { cx: X(last[0]), cy: Y(last[1]), r: 4, fill: color },
      s('title', {}, `${se.name}: ${yFmt(last[1])}`)));
  });
  svg.append(g);
  return svg;
}

// Grouped bars: groups [{label, values: [{name, value|null, color}]}];
// a null value is drawn as a cross on the axis (e.g. a step not detected).
export function barChart({ groups, width = 720, height = 260, yFmt = String, label, missingLabel = '' }) {
  const pad = { l: 48, r: 16, t: 14, b: 44 };
  const f = frame(width, height, pad);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label || '' });
  if (!groups.length) return svg;
  const vals = groups.flatMap((gr) => gr.values.map((v) => v.value)).filter((v) => v !== null && v !== undefined);
  const top = niceMax(Math.max(0, ...vals));
  const g = s('g');
  axes(g, f, top, yFmt, 4);
  const gw = (f.x1 - f.x0) / groups.length;
  groups.forEach((gr, gi) => {
    const n = Math.max(1, gr.values.length);
    const bw = Math.min(28, (gw * 0.8) / n);
    const start = f.x0 + gi * gw + (gw - bw * n) / 2;
    gr.values.forEach((v, vi) => {
      const x = start + vi * bw;
      const color = v.color || PALETTE[vi % PALETTE.length];
      if (v.value === null || v.value === undefined) {
        g.append(s('text', { x: x + bw / 2, y: f.y0 - 4, 'text-anchor': 'middle', class: 'miss', fill: color },
          '×', s('title', {}, `${gr.label} · ${v.name}: ${missingLabel}`)));
        return;
      }
      const y = f.y0 - (v.value / top) * (f.y0 - f.y1);
      g.append(s('rect', { x: x + 1, y, width: Math.max(1, bw - 2), height: f.y0 - y, fill: color },
        s('title', {}, `${gr.label} · ${v.name}: ${yFmt(v.value)}`)));
    });
    g.append(s('text', { x: f.x0 + gi * gw + gw / 2, y: f.y0 + 16, 'text-anchor': 'middle', class: 'tick' },
      gr.label.length > 14 ? `${gr.label.slice(0, 13)}…` : gr.label, s('title', {}, gr.label)));
  });
  svg.append(g);
  return svg;
}

// Events on lanes over time: lanes [{key, label}], items [{lane, x, title, color}].
export function laneChart({ lanes, items, width = 720, xFmt = String, label, xMin, xMax }) {
  const pad = { l: 110, r: 16, t: 10, b: 28 };
  const laneH = 30;
  const height = pad.t + pad.b + laneH * lanes.length;
  const f = frame(width, height, pad);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label || '' });
  const xs = items.map((i) => i.x);
  let lo = xMin ?? (xs.length ? Math.min(...xs) : 0);
  let hi = xMax ?? (xs.length ? Math.max(...xs) : 1);
  if (hi <= lo) { hi = lo + 60000; lo -= 0; }
  const X = (x) => f.x0 + ((x - lo) / (hi - lo)) * (f.x1 - f.x0);
  const g = s('g');
  lanes.forEach((ln, i) => {
    const y = pad.t + i * laneH + laneH / 2;
    g.append(s('line', { x1: f.x0, x2: f.x1, y1: y, y2: y, class: 'grid' }));
    g.append(s('text', { x: f.x0 - 8, y: y + 4, 'text-anchor': 'end', class: 'lane' }, ln.label));
  });
  for (let i = 0; i <= 4; i++) {
    const x = lo + ((hi - lo) * i) / 4;
    g.append(s('text', { x: X(x), y: height - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'tick' }, xFmt(x)));
  }
  items.forEach((it) => {
    const li = lanes.findIndex((l) => l.key === it.lane);
    if (li < 0) return;
    const y = pad.t + li * laneH + laneH / 2;
    g.append(s('circle', { cx: X(it.x), cy: y, r: 6, fill: it.color || PALETTE[li % PALETTE.length], class: 'dot' },
      s('title', {}, it.title)));
  });
  svg.append(g);
  return svg;
}

// A horizontal bar of coloured parts (e.g. step states): parts [{n, cls, title}].
export function stackBar(parts) {
  const total = parts.reduce((a, p) => a + p.n, 0) || 1;
  return h('div', { class: 'stackbar' },
    parts.filter((p) => p.n > 0).map((p) => h('span', { class: p.cls, style: `width:${(100 * p.n) / total}%`, title: p.title })));
}
