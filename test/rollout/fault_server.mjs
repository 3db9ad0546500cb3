// A deliberately broken HTTP peer for the rollout fault tests, run as its own process on loopback:
//   garbage  -> 200 with a non-JSON body        badshape -> 200 with JSON missing the expected fields
//   hang     -> accepts the request, never replies   error500 -> 500 with an error message
// GET /count answers how many other requests it received. Prints `listening on <url>` when ready.
import http from 'node:http';

const mode = process.argv[2] ?? 'garbage';
let count = 0;
const server = http.createServer((req, res) => {
  if (req.url === '/count') {
    res.end(JSON.stringify({ count }));
    return;
  }
  count++;
  req.resume();
  req.on('end', () => {
    if (mode === 'garbage') res.end('<html>502 upstream garbage');
    else if (mode === 'badshape')
      res.end(JSON.stringify([{ text: 'hi', meta_info: { finish_reason: { type: 'stop' } } }]));
    else if (mode === 'error500') {
      res.statusCode = 500;
      res.end(JSON.stringify({ error: 'CUDA out of memory (injected)' }));
    }
    // 'hang': never answer
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
// never outlive the test by much
setTimeout(() => process.exit(0), 300_000).unref();
