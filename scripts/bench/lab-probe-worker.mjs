// The lab's client (a worker thread, plain JS so it needs no loader): probes a VM through its hosts
// every `intervalMs` over WebSocket. Each probe is `seq`; a host answers `seq hb <heartbeatMs>`
// only while the VM runs there, `seq not-here` otherwise, and the client then probes the other
// host. Replies that carry a heartbeat are timestamped on this thread's clock
// (performance.timeOrigin + performance.now(), comparable with the hosts' clocks).
//
// Messages from the parent: {type:'start'} clears the record; {type:'stop'} answers
// {type:'replies', atMs: Float64Array, heartbeats: Float64Array, sent, notHere}.
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

const { urls, token, intervalMs } = workerData;
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
    const parts = text.split(' ');
    if (parts[1] === 'hb') {
      if (recording) {
        at.push(t);
        heartbeats.push(Number(parts[2]));
      }
    } else if (parts[1] === 'not-here') {
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
      ws.send(String(++seq));
      if (recording) sent++;
    }, intervalMs);
    parentPort.postMessage({ type: 'ready' });
  })
  .catch((err) => parentPort.postMessage({ type: 'error', message: String(err?.message ?? err) }));

parentPort.on('message', (m) => {
  if (m.type === 'start') {
    at = [];
    heartbeats = [];
    sent = 0;
    notHere = 0;
    recording = true;
  } else if (m.type === 'stop') {
    recording = false;
    const a = Float64Array.from(at);
    const h = Float64Array.from(heartbeats);
    parentPort.postMessage({ type: 'replies', atMs: a, heartbeats: h, sent, notHere }, [a.buffer, h.buffer]);
  } else if (m.type === 'close') {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }
});
