// Independent JWT implementation (npm jose) used to cross-check volguard's tokens.
//   node jose_tool.mjs sign   ALG KEYFILE ISSUER     -> prints a token
//   node jose_tool.mjs verify ALG KEYFILE ISSUER TOKEN -> prints the payload JSON, exit 1 on failure
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const [cmd, alg, keyFile, issuer, token] = process.argv.slice(2);
const raw = readFileSync(keyFile, 'utf8');

async function key(forSigning) {
  if (alg.startsWith('HS')) return new TextEncoder().encode(raw.replace(/\r?\n$/, ''));
  return forSigning ? jose.importPKCS8(raw, alg) : jose.importSPKI(raw, alg);
}

if (cmd === 'sign') {
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new jose.SignJWT({
    name: 'Jose User', email: 'jose@example.com', roles: ['system.user'], groups: ['interop'],
  })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuer(issuer).setSubject('jose-' + alg).setIssuedAt(now).setExpirationTime(now + 600)
    .sign(await key(true));
  console.log(jwt);
} else if (cmd === 'verify') {
  try {
    const { payload } = await jose.jwtVerify(token, await key(false), { issuer, algorithms: [alg] });
    console.log(JSON.stringify(payload));
  } catch (e) {
    console.error('jose refused: ' + e.code);
    process.exit(1);
  }
} else {
  console.error('usage: sign|verify ...');
  process.exit(2);
}
