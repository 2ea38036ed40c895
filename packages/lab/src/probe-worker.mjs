// The lab's client (a worker thread, plain JS so it needs no loader): probes a VM through its hosts
// every `intervalMs` over WebSocket. Each probe is `seq`; a host answers `seq hb <heartbeatMs>`
// only while the VM runs there, `seq not-here` otherwise, and the client then probes the other
// host. Replies that carry a heartbeat are timestamped on this thread's clock
// (performance.timeOrigin + performance.now(), comparable with the hosts' clocks).
//
// With `protocol: 'agent'` it speaks the agents' probe protocol instead (apps/agent/src/probe.ts):
// JSON `{id, vm, afterMs, timeoutMs}`, answered `{status: 'ok', heartbeatMs}` once the guest ran
// after the probe was sent, or `{status: 'not-here'}`.
//
// Messages from the parent: {type:'start', vm?, target?} clears the record (and sets the VM and the
// host probed first); {type:'stop'} answers {type:'replies', atMs, heartbeats (Float64Array), sent, notHere}.
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

const { urls, token, intervalMs, protocol } = workerData;
const agentProtocol = protocol === 'agent';
let vm = '';
const now = () => performance.timeOrigin + performance.now();
const sockets = urls.map((url) => new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false }));
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
    const text = data.toString();
    let status;
    let hb = 0;
    if (agentProtocol) {
      const r = JSON.parse(text);
      status = r.status === 'ok' ? 'hb' : r.status;
      hb = r.heartbeatMs ?? 0;
    } else {
      const parts = text.split(' ');
      status = parts[1];
      hb = Number(parts[2]);
    }
    if (status === 'hb') {
      if (recording) {
        at.push(t);
        heartbeats.push(hb);
      }
    } else if (status === 'not-here') {
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
      if (ws.readyState !== WebSocket.OPEN) return;
      ++seq;
      if (agentProtocol) {
        if (vm) ws.send(JSON.stringify({ id: seq, vm, afterMs: now(), timeoutMs: 10000 }));
      } else ws.send(String(seq));
      if (recording) sent++;
    }, intervalMs);
    parentPort.postMessage({ type: 'ready' });
  })
  .catch((err) => parentPort.postMessage({ type: 'error', message: String(err?.message ?? err) }));

parentPort.on('message', (m) => {
  if (m.type === 'start') {
    if (m.vm !== undefined) vm = m.vm;
    if (m.target !== undefined) target = m.target;
    at = [];
    heartbeats = [];
    sent = 0;
    notHere = 0;
    recording = true;
  } else if (m.type === 'stop') {
    recording = false;
    if (agentProtocol) vm = '';
    const a = Float64Array.from(at);
    const h = Float64Array.from(heartbeats);
    parentPort.postMessage({ type: 'replies', atMs: a, heartbeats: h, sent, notHere }, [a.buffer, h.buffer]);
  } else if (m.type === 'close') {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }
});
