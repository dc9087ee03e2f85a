// A real OpenID provider (npm oidc-provider) for volguard's OIDC tests, on loopback.
//   node oidc_provider.mjs PORT KEYFILE KID
// Serves discovery and /jwks; issues JWT access tokens through the client_credentials grant
// (resource indicators with accessTokenFormat 'jwt') carrying roles and groups claims. Its
// signing key is kept in KEYFILE (made with kid KID if absent), so a restart keeps the key and
// deleting the file rotates it. GET /test/jwks-hits counts JWKS fetches.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const [port, keyFile, kid] = process.argv.slice(2);
let jwk;
if (existsSync(keyFile)) {
  jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
} else {
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  jwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
  writeFileSync(keyFile, JSON.stringify(jwk));
}
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'volguard-tests',
    client_secret: 'volguard-tests-secret-0123456789',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [jwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:volguard',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => ({
        scope: 'api',
        audience: resource,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  extraTokenClaims: () => ({ roles: ['system.user'], groups: ['idp-users'] }),
});
let jwksHits = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/jwks') jwksHits += 1;
  if (ctx.path === '/test/jwks-hits') { ctx.body = String(jwksHits); return; }
  await next();
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider ${issuer} kid=${jwk.kid}`));
