// The probing client's worker thread (plain JS, so it needs no loader; driven by ProbeRecorder in
// probe-client.ts): probes one VM through its hosts' `/probe` WebSockets every `intervalMs`
// (apps/agent/src/probe.ts): JSON `{id, vm, afterMs, timeoutMs}`, answered `{status: 'ok',
// heartbeatMs}` once the guest ran after the probe was sent, or `{status: 'not-here'}`, after
// which the client probes the next host. Replies that carry a heartbeat are timestamped on this
// thread's clock (performance.timeOrigin + performance.now(), comparable with the hosts' clocks).
// A thread of its own keeps the caller's work (HTTP polling, JSON) out of the probe timing.
//
// Messages from the parent: {type:'start', vm, target?} clears the record, sets the VM and the host
// probed first; {type:'stop'} answers {type:'replies', atMs, heartbeats (Float64Array), sent, notHere}.
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

const { urls, token, intervalMs } = workerData;
let vm = '';
const now = () => performance.timeOrigin + performance.now();
const sockets = urls.map((url) => new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, handshakeTimeout: 5000 }));
let target = 0;
let seq = 0;
let recording = false;
let at = [];
let heartbeats = [];
let sent = 0;
let notHere = 0;

sockets.forEach((ws, i) => {
  ws.on('message', (data) => {
    const t = now();
    let r;
    try {
      r = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (r.status === 'ok') {
      if (recording) {
        at.push(t);
        heartbeats.push(r.heartbeatMs ?? 0);
      }
    } else if (r.status === 'not-here') {
      if (recording) notHere++;
      if (target === i) target = (i + 1) % sockets.length;
    }
  });
  ws.on('error', () => {});
});

Promise.all(sockets.map((ws) => new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); })))
  .then(() => {
    setInterval(() => {
      const ws = sockets[target];
      if (!vm || ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ id: ++seq, vm, afterMs: now(), timeoutMs: 10000 }));
      if (recording) sent++;
    }, intervalMs);
    parentPort.postMessage({ type: 'ready' });
  })
  .catch((err) => parentPort.postMessage({ type: 'error', message: String(err?.message ?? err) }));

parentPort.on('message', (m) => {
  if (m.type === 'start') {
    vm = m.vm;
    if (m.target !== undefined) target = m.target;
    at = [];
    heartbeats = [];
    sent = 0;
    notHere = 0;
    recording = true;
  } else if (m.type === 'stop') {
    recording = false;
    vm = '';
    const a = Float64Array.from(at);
    const h = Float64Array.from(heartbeats);
    parentPort.postMessage({ type: 'replies', atMs: a, heartbeats: h, sent, notHere }, [a.buffer, h.buffer]);
  } else if (m.type === 'close') {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }
});
