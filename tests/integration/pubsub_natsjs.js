// The npm `nats` client (nats.js 2.x) against a NATS server: node pubsub_natsjs.js <port>
// <mode>. mode "main": pub/sub, wildcards, unsubscribe after N, queue groups, request/reply,
// no-responders, headers, echo off; "token:<t>": auth with a token, and a wrong token is
// refused. Prints "ok <mode>" and exits 0, or prints the failure and exits 1. Every wait is
// bounded (timeouts below).
'use strict';
const { connect, StringCodec, headers, Empty, ErrorCode } = require('nats');

const [port, mode] = process.argv.slice(2);
const server = `127.0.0.1:${port}`;
const sc = StringCodec();

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}
function within(ms, p, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms))]);
}
async function collect(sub, n, ms) {
  const got = [];
  await within(ms, (async () => {
    for await (const m of sub) {
      got.push(m);
      if (got.length === n) break;
    }
  })(), `${n} messages on ${sub.getSubject()}`);
  return got;
}

async function main() {
  const a = await connect({ servers: server, name: 'a' });
  const b = await connect({ servers: server, name: 'b' });
  check(a.info.proto === 1 && a.info.headers === true, 'INFO proto/headers');

  // Wildcards and unsubscribe after N (max).
  const star = a.subscribe('w.*', { max: 3 });
  const full = a.subscribe('w.>');
  await a.flush();
  for (let i = 0; i < 5; i++) b.publish(`w.${i}`, sc.encode(`m${i}`));
  b.publish('w.x.y', sc.encode('deep'));
  await b.flush();
  const s = await collect(star, 3, 3000);
  check(s.map((m) => sc.decode(m.data)).join() === 'm0,m1,m2', 'w.* in order: ' + s.map((m) => sc.decode(m.data)));
  await within(3000, star.closed, 'max 3 closes the subscription');
  const f = await collect(full, 6, 3000);
  check(f[5].subject === 'w.x.y', 'w.> sees w.x.y');
  full.unsubscribe();

  // Queue groups: each message to one member.
  const q1 = a.subscribe('q', { queue: 'g' }), q2 = b.subscribe('q', { queue: 'g' });
  let n1 = 0, n2 = 0;
  (async () => { for await (const _ of q1) n1++; })();
  (async () => { for await (const _ of q2) n2++; })();
  await a.flush();
  await b.flush();
  for (let i = 0; i < 200; i++) b.publish('q', sc.encode(String(i)));
  await b.flush();
  await a.flush();
  await within(3000, (async () => { while (n1 + n2 < 200) await new Promise((r) => setTimeout(r, 10)); })(), 'queue total');
  await new Promise((r) => setTimeout(r, 100));
  check(n1 + n2 === 200, `queue delivered ${n1}+${n2}`);
  check(n1 > 0 && n2 > 0, `both members got some: ${n1} ${n2}`);

  // Request/reply.
  a.subscribe('svc', { callback: (err, m) => { if (!err) m.respond(sc.encode('re:' + sc.decode(m.data))); } });
  await a.flush();
  const r = await b.request('svc', sc.encode('x'), { timeout: 2000 });
  check(sc.decode(r.data) === 're:x', 'request/reply');

  // No responders.
  let code = '';
  try {
    await b.request('nobody.home', Empty, { timeout: 2000 });
  } catch (e) {
    code = e.code;
  }
  check(code === ErrorCode.NoResponders, 'no responders, got ' + code);

  // Headers.
  const hs = a.subscribe('h');
  await a.flush();
  const h = headers();
  h.append('X-Test', 'v1');
  b.publish('h', sc.encode('body'), { headers: h });
  const [hm] = await collect(hs, 1, 3000);
  check(hm.headers && hm.headers.get('X-Test') === 'v1' && sc.decode(hm.data) === 'body', 'headers');

  // Echo off: a connection does not get its own messages.
  const quiet = await connect({ servers: server, noEcho: true });
  let own = 0;
  const qs = quiet.subscribe('e', { callback: () => own++ });
  const other = a.subscribe('e');
  await quiet.flush();
  await a.flush();
  quiet.publish('e', sc.encode('1'));
  await quiet.flush();
  await collect(other, 1, 3000);
  await quiet.flush();
  check(own === 0, 'no echo');
  qs.unsubscribe();
  await quiet.close();

  await a.drain();
  await b.drain();
}

async function auth(token) {
  const nc = await connect({ servers: server, token });
  const sub = nc.subscribe('t');
  await nc.flush();
  nc.publish('t', sc.encode('ok'));
  const [m] = await collect(sub, 1, 3000);
  check(sc.decode(m.data) === 'ok', 'authorized pub/sub');
  await nc.close();
  let code = '';
  try {
    await connect({ servers: server, token: token + 'x', reconnect: false, maxReconnectAttempts: 0 });
  } catch (e) {
    code = e.code;
  }
  check(code === ErrorCode.AuthorizationViolation, 'wrong token refused, got ' + code);
}

(mode.startsWith('token:') ? auth(mode.slice(6)) : main()).then(
  () => { console.log('ok ' + mode); process.exit(0); },
  (e) => { console.log('FAIL ' + mode + ': ' + (e && e.stack || e)); process.exit(1); });
