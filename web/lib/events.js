// events — the /api/events WebSocket, reconnected with back-off (1 s
// doubling to 30 s) for as long as someone is logged in.
import { wsUrl } from './api.js';

const listeners = new Set();
const statusListeners = new Set();
let ws = null;
let wanted = false;
let delay = 1000;
let timer = null;
let status = 'offline';

function setStatus(st) { status = st; statusListeners.forEach((fn) => fn(st)); }

function connect() {
  if (!wanted) return;
  setStatus('connecting');
  ws = new WebSocket(wsUrl('/api/events'));
  ws.onopen = () => { delay = 1000; setStatus('live'); };
  ws.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    listeners.forEach((fn) => { try { fn(ev); } catch (e) { console.error(e); } });
  };
  ws.onclose = () => {
    ws = null;
    if (!wanted) { setStatus('offline'); return; }
    setStatus('reconnecting');
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30000);
  };
  ws.onerror = () => { if (ws) ws.close(); };
}

export function startEvents() { if (wanted) return; wanted = true; connect(); }

export function stopEvents() {
  wanted = false;
  clearTimeout(timer);
  if (ws) ws.close();
  setStatus('offline');
}

// fn(event) for every event; returns the function that unsubscribes.
export function onEvent(fn) { listeners.add(fn); return () => listeners.delete(fn); }
export function onStatus(fn) { statusListeners.add(fn); fn(status); return () => statusListeners.delete(fn); }
