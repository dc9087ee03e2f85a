// Parses log files with npm logfmt (the parser family fluent-bit's logfmt mirrors) and checks
// that every line is one whole record with the fields volguard promises.
//   node logfmt_check.mjs FILE [FILE...]   -> prints "<lines> records" or exits 1
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const logfmt = require('logfmt');

const required = ['time', 'level', 'msg', 'method'];
let total = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  if (text.length && !text.endsWith('\n')) { console.error(`${file}: last record is torn`); process.exit(1); }
  const lines = text.split('\n').filter((l) => l.length);
  for (const [i, line] of lines.entries()) {
    const rec = logfmt.parse(line);
    for (const k of required) {
      if (!(k in rec)) { console.error(`${file}:${i + 1}: missing ${k}: ${line}`); process.exit(1); }
    }
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(rec.time)) {
      console.error(`${file}:${i + 1}: time is not RFC 3339 UTC with fraction: ${rec.time}`); process.exit(1);
    }
    if (file.includes('audit') && !('chain' in rec && 'seq' in rec)) {
      console.error(`${file}:${i + 1}: audit record without seq/chain`); process.exit(1);
    }
    total++;
  }
}
console.log(`${total} records`);
