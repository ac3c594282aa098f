// A real OpenID Connect provider for Roster's sign-in tests (tests/e2e/sso.rs): panva's
// certified `oidc-provider` with its development login page (any login, any password; the
// login is the account's email and preferred_username), consent granted for the one client.
//
//   node provider.mjs   with OIDC_TEST_CONFIG='{"port":…,"client_id":…,"client_secret":…,"redirect_uris":[…]}'
//
// Two test controls on the same port, for what a well-behaved provider never does by itself:
//   POST /__test/rotate          replaces the signing key (a new `kid`; the JWKS lists only it)
//   POST /__test/tamper?mode=M   from now on, the token endpoint's ID token is re-signed
//                                with one thing wrong: `audience` (issued for another client),
//                                `nonce` (another sign-in's), `expired` (an hour ago),
//                                `unlisted_key` (a key the JWKS does not list), `retired_key`
//                                (the key before the last rotation); `none` stops.
// It prints "listening" once it accepts connections.

import http from 'node:http';
import crypto from 'node:crypto';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;

async function newKey(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}

let tamper = 'none';
let signingKey = await newKey(`key-${crypto.randomUUID()}`);
let retiredKey = null;

async function resign(idToken) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  let key = signingKey;
  switch (tamper) {
    case 'audience': claims.aud = 'another-application'; break;
    case 'nonce': claims.nonce = 'a-nonce-of-another-sign-in'; break;
    case 'expired': claims.iat = now - 7200; claims.exp = now - 3600; break;
    case 'unlisted_key': key = await newKey('not-in-the-jwks'); break;
    case 'retired_key': key = retiredKey; break;
    default: return idToken;
  }
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
    .sign(await jose.importJWK(key, 'RS256'));
}

function build() {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: config.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: ['roster-test-cookie-key'] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
    },
    // Okta puts the scopes' claims in the ID token; so does this provider.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id, email_verified: true, preferred_username: id, name: id };
        },
      };
    },
    // The one client is first-party: consent is implied.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: await resign(ctx.body.id_token) };
    }
  });
  return provider.callback();
}

let handler = build();

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname === '/__test/rotate') {
    retiredKey = signingKey;
    signingKey = await newKey(`key-${crypto.randomUUID()}`);
    handler = build();
    res.end(JSON.stringify({ kid: signingKey.kid }));
    return;
  }
  if (req.method === 'POST' && url.pathname === '/__test/tamper') {
    tamper = url.searchParams.get('mode') ?? 'none';
    res.end(JSON.stringify({ tamper }));
    return;
  }
  handler(req, res);
});
server.listen(config.port, '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
