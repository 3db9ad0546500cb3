// A small OpenAI-compatible judge server for the judge client tests, run as its own process on loopback
// (`node test/analysis/judge_server.mjs [--delay MS]`; prints `listening PORT`). It is a real peer with a
// deterministic rule, not a canned answer: for POST /v1/chat/completions it reads the behaviour name and the trace
// from the counting prompt and answers `<count>N</count>` with N = occurrences of that behaviour's keyword in the
// trace (KEYWORDS below). Faults are requested by markers inside the trace:
//   [fail500:ID:K]  answer HTTP 500 to the first K requests carrying ID, then answer normally
//   [drop:ID:K]     destroy the connection without a response for the first K requests carrying ID
//   [malformed]     always answer without a <count> tag
// GET /stats reports requests, per-marker hits and the peak number of requests in flight; POST /reset clears them.
import http from 'node:http';

const KEYWORDS = {
  backtracking: 'wait',
  'subgoal setting': 'first',
  verification: 'check',
  'backward chaining': 'backwards',
  'visual reflection': 'image again',
  'visual divide-and-conquer': 'region',
  'visual verification': 'matches the figure',
  'goal-driven visual tracing': 'trace',
};

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const DELAY = arg('--delay', 0);

let stats = { requests: 0, inFlight: 0, maxInFlight: 0, seen: {} };
const occurrences = (text, word) => text.toLowerCase().split(word).length - 1;

function answer(prompt) {
  const trace = /<reasoning>\n([\s\S]*)\n<\/reasoning>/.exec(prompt)?.[1];
  const name = /the reasoning shows ([^:]+):/.exec(prompt)?.[1];
  if (trace === undefined || !(name in KEYWORDS))
    return { status: 400, text: `cannot read the prompt (${name})` };
  if (trace.includes('[malformed]')) return { status: 200, content: 'There are a few instances, I think.' };
  for (const m of trace.matchAll(/\[(fail500|drop):([\w-]+):(\d+)\]/g)) {
    const key = `${m[1]}:${m[2]}`;
    stats.seen[key] = (stats.seen[key] ?? 0) + 1;
    if (stats.seen[key] <= Number(m[3])) return { status: m[1] === 'drop' ? 'drop' : 500, text: 'injected' };
  }
  const n = occurrences(trace.replace(/\[[^\]]*\]/g, ''), KEYWORDS[name]);
  return { status: 200, content: `Counting "${KEYWORDS[name]}": <count>${n}</count>` };
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') return res.end(JSON.stringify(stats));
  if (req.method === 'POST' && req.url === '/reset') {
    stats = { requests: 0, inFlight: 0, maxInFlight: 0, seen: {} };
    return res.end('{}');
  }
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    res.statusCode = 404;
    return res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
  }
  let body = '';
  req.on('data', (c) => {
    body += c;
  });
  req.on('end', () => {
    stats.requests++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    setTimeout(() => {
      stats.inFlight--;
      const j = JSON.parse(body);
      const prompt = j.messages.map((m) => m.content).join('\n');
      const a = answer(prompt);
      if (a.status === 'drop') return req.socket.destroy();
      res.statusCode = a.status;
      res.setHeader('content-type', 'application/json');
      if (a.status !== 200) return res.end(JSON.stringify({ error: { message: a.text } }));
      res.end(
        JSON.stringify({
          id: `judge-${stats.requests}`,
          object: 'chat.completion',
          model: j.model,
          choices: [{ index: 0, message: { role: 'assistant', content: a.content }, finish_reason: 'stop' }],
          usage: { prompt_tokens: Math.ceil(prompt.length / 4), completion_tokens: 12 },
        }),
      );
    }, DELAY);
  });
});

server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
