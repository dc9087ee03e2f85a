// Tokens an attacker could make: signed with a fresh key of its own, claiming an issuer's iss.
//   node forge_token.mjs ISS AUD KID [COUNT]   (KID "random" gives each token a made-up kid)
import * as jose from 'jose';
const [iss, aud, kid, count = '1'] = process.argv.slice(2);
const { privateKey } = await jose.generateKeyPair('ES256');
for (let i = 0; i < Number(count); i += 1) {
  const now = Math.floor(Date.now() / 1000);
  const k = kid === 'random' ? `made-up-${i}-${Math.random().toString(36).slice(2)}` : kid;
  console.log(await new jose.SignJWT({ roles: ['system.admin'], groups: ['*'] })
    .setProtectedHeader({ alg: 'ES256', kid: k })
    .setIssuer(iss).setAudience(aud).setSubject('mallory').setIssuedAt(now).setExpirationTime(now + 300)
    .sign(privateKey));
}
