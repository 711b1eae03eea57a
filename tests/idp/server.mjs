// Local OpenID provider for the exls end-to-end tests (node-oidc-provider v9).
//
// Usage: node server.mjs --cert CERT.pem --key KEY.pem [--port 0] [--host 127.0.0.1]
//        [--listen-fd N] [--signing-key JWK.json]
// (or IDP_CERT / IDP_KEY / IDP_PORT / IDP_HOST / IDP_LISTEN_FD / IDP_SIGNING_KEY). Once
// listening it prints one JSON line on stdout:
// {"event":"listening","issuer":"https://127.0.0.1:PORT","port":PORT,...}.
// --listen-fd serves an inherited, already listening socket (the test fixture keeps it across
// restarts, so the port is never free for someone else to take); --signing-key loads the
// RS256 private JWK (made once per test run) instead of generating a key at every start.
//
// Test-only admin endpoints (never expose a provider like this outside tests):
//   GET  /__test__/events          JSON list of recorded requests (params included)
//   POST /__test__/reset           clear events, restore the startup settings
//   GET  /__test__/config          current runtime settings
//   POST /__test__/config          JSON body merged into the runtime settings (see `settings`)
//   POST /__test__/lookup          JSON {"token": "..."} -> is it a live access/refresh token?
//
// Provider shapes, chosen at start: IDP_ISSUER_PATH (an issuer with a path, e.g. /realms/acme,
// or "/" for a trailing slash; everything is served under it), IDP_ROUTE_SLASH=1 (endpoints
// with trailing slashes), IDP_DEVICE_FLOW=0 (no device flow), IDP_CLIENT_SCOPE (the scopes
// the client may request; others it knows answer invalid_scope).

import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { parse as parseQuery } from 'node:querystring';
import { parseArgs } from 'node:util';

import Provider, { errors, interactionPolicy } from 'oidc-provider';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';

const { values: args } = parseArgs({
  options: {
    cert: { type: 'string', default: process.env.IDP_CERT },
    key: { type: 'string', default: process.env.IDP_KEY },
    port: { type: 'string', default: process.env.IDP_PORT ?? '0' },
    host: { type: 'string', default: process.env.IDP_HOST ?? '127.0.0.1' },
    'listen-fd': { type: 'string', default: process.env.IDP_LISTEN_FD },
    'signing-key': { type: 'string', default: process.env.IDP_SIGNING_KEY },
  },
});
if (!args.cert || !args.key) {
  console.error('server.mjs: --cert and --key (or IDP_CERT / IDP_KEY) are required');
  process.exit(2);
}

const envInt = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number.parseInt(raw, 10);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative integer`);
  return value;
};

const CLIENT_ID = process.env.IDP_CLIENT_ID || 'exls-test-client';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const WORKLOAD_CLIENT_ID = 'exls-ci-client';
const WORKLOAD_SECRET_CLIENT_ID = 'exls-ci-confidential';
const WORKLOAD_CLIENT_SECRET = 'exls-ci-secret-for-tests-only-0123456789';
const WORKLOAD_ASSERTION_CLIENT_ID = 'exls-ci-federated';
const ASSERTION_STAND_IN_SECRET = randomBytes(32).toString('hex'); // never leaves this process
const INTROSPECTOR_CLIENT_ID = 'exls-test-introspector';
const INTROSPECTOR_SECRET = 'exls-introspector-secret-for-tests-only';
const ISSUER_PATH = process.env.IDP_ISSUER_PATH || '';
const MOUNT = ISSUER_PATH.replace(/\/$/, ''); // where the provider is served: '' or '/realms/acme'
const DEVICE_FLOW = process.env.IDP_DEVICE_FLOW !== '0';
const SLASH = process.env.IDP_ROUTE_SLASH === '1' ? '/' : '';
const ROUTES = {
  authorization: `/auth${SLASH}`,
  token: `/token${SLASH}`,
  device_authorization: `/device/auth${SLASH}`,
  revocation: `/token/revocation${SLASH}`,
  introspection: `/token/introspection${SLASH}`,
  userinfo: `/me${SLASH}`,
  jwks: `/jwks${SLASH}`,
};
// RFC 8414 section 3: the well-known part goes between the host and the issuer's path.
const OAUTH_METADATA_PATH = `/.well-known/oauth-authorization-server${MOUNT}`;
// Native client: a loopback redirect registered without a port matches any port (RFC 8252 7.3).
const REDIRECT_URIS = (process.env.IDP_REDIRECT_URIS || 'http://127.0.0.1/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);

// Runtime settings; POST /__test__/config changes them, POST /__test__/reset restores these.
const STARTUP_SETTINGS = Object.freeze({
  access_token_ttl: envInt('IDP_ACCESS_TOKEN_TTL', 3600),
  id_token_ttl: envInt('IDP_ID_TOKEN_TTL', 3600),
  refresh_token_ttl: envInt('IDP_REFRESH_TOKEN_TTL', 14 * 24 * 3600),
  device_code_ttl: envInt('IDP_DEVICE_CODE_TTL', 600),
  // `interval` returned by the device authorization endpoint (RFC 8628 default: 5 s).
  device_interval: envInt('IDP_DEVICE_INTERVAL', 5),
  // Answer `slow_down` (and add 5 s) when a device_code is polled faster than its interval.
  enforce_slow_down: process.env.IDP_ENFORCE_SLOW_DOWN !== '0',
  // Seconds a slow_down adds to the device_code's interval (RFC 8628: 5).
  slow_down_increment: 5,
  // Answer `slow_down` to the next N device_code polls whatever their timing.
  force_slow_down: 0,
  // Scopes of the API named by `audience`/`resource` (space-separated), granted when requested.
  api_scopes: process.env.IDP_API_SCOPES ?? 'read write',
  // Skip the consent screen (like a first-party app); the grant covers whatever was requested.
  skip_consent: process.env.IDP_SKIP_CONSENT === '1',
  // Faults to inject, consumed in order: {route: "token"|"authorization"|"device_authorization"|
  // "revocation"|"userinfo"|"discovery"|"oauth_metadata", grant_type?, status?, error?, error_description?,
  // delay_ms?, times?: 1}. With `error` the request is answered with it; with only
  // `delay_ms` it is delayed and then served normally.
  inject: [],
  // Grant types whose token responses leave out the id_token (RFC 8628 does not require one
  // from the device grant), e.g. ["urn:ietf:params:oauth:grant-type:device_code"].
  drop_id_token: [],
  // false: no refresh tokens at all, offline_access or not.
  issue_refresh_token: true,
  // Keys set in (null: removed from) the OpenID discovery document, e.g. to advertise the
  // revocation endpoint only in the RFC 8414 metadata.
  discovery_patch: {},
  // Serve RFC 8414 authorization server metadata (the provider's unpatched metadata) at
  // OAUTH_METADATA_PATH; otherwise that path answers 404.
  oauth_metadata: false,
  // Workload identity (issue 22): the CI issuer whose tokens the RFC 8693 grant and the
  // RFC 7523 assertion client accept, {issuer, jwks_uri, audience}; null: trust none.
  // jwks_uri is fetched over TLS (NODE_EXTRA_CA_CERTS trusts the test CA).
  workload_trust: null,
});
let settings = structuredClone(STARTUP_SETTINGS);

// Recorded requests (see recordEvent) and per-device_code polling state for slow_down.
let events = [];
let seq = 0;
const devicePolls = new Map();

const signingKey = args['signing-key']
  ? JSON.parse(readFileSync(args['signing-key'], 'utf8'))
  : {
    ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
    kid: `test-${randomUUID()}`,
    alg: 'RS256',
    use: 'sig',
  };

// Email: the login itself when it looks like one, else <login>@example.com.
const emailFor = (login) => (login.includes('@') ? login : `${login}@example.com`);

async function findAccount(_ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: emailFor(sub),
        email_verified: true,
        name: sub.split('@')[0],
        preferred_username: sub,
      };
    },
  };
}

// Like Auth0 first-party apps: optionally grant everything requested without a consent screen.
async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId
    || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (grantId) return ctx.oidc.provider.Grant.find(grantId);
  if (!settings.skip_consent) return undefined;
  const grant = new ctx.oidc.provider.Grant({
    clientId: ctx.oidc.client.clientId,
    accountId: ctx.oidc.session.accountId,
  });
  grant.addOIDCScope(ctx.oidc.params.scope ?? 'openid');
  await grant.save();
  return grant;
}

// Native clients always get a consent screen (the `native_client_prompt` check), and so does
// prompt=consent; with skip_consent both checks stand down and loadExistingGrant grants.
const policy = interactionPolicy.base();
for (const reason of ['consent_prompt', 'native_client_prompt']) {
  const check = policy.get('consent').checks.get(reason);
  const original = check.check;
  check.check = (ctx) => (settings.skip_consent ? false : original(ctx));
}

const configuration = {
  interactions: { policy },
  clients: [{
    client_id: CLIENT_ID,
    client_name: 'exls test client',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token',
      ...(DEVICE_FLOW ? ['urn:ietf:params:oauth:grant-type:device_code'] : [])],
    response_types: ['code'],
    redirect_uris: REDIRECT_URIS,
    ...(process.env.IDP_CLIENT_SCOPE ? { scope: process.env.IDP_CLIENT_SCOPE } : {}),
  }, {
    // Workload identity, RFC 8693: a public client that may only trade a CI token.
    client_id: WORKLOAD_CLIENT_ID,
    client_name: 'exls CI (token exchange)',
    token_endpoint_auth_method: 'none',
    grant_types: [TOKEN_EXCHANGE],
    response_types: [],
    redirect_uris: [],
  }, {
    // The same with client authentication (client_secret_post), as some providers require.
    client_id: WORKLOAD_SECRET_CLIENT_ID,
    client_secret: WORKLOAD_CLIENT_SECRET,
    client_name: 'exls CI (token exchange, confidential)',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: [TOKEN_EXCHANGE],
    response_types: [],
    redirect_uris: [],
  }, {
    // RFC 7523 assertion mode (Entra ID federated credential style): client_credentials with
    // the CI token as client_assertion; the pre-processing below checks the assertion.
    client_id: WORKLOAD_ASSERTION_CLIENT_ID,
    client_secret: ASSERTION_STAND_IN_SECRET,
    client_name: 'exls CI (federated client assertion)',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  }, {
    // A resource server that introspects tokens (RFC 7662) in the tests.
    client_id: INTROSPECTOR_CLIENT_ID,
    client_secret: INTROSPECTOR_SECRET,
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  }],
  routes: ROUTES,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount,
  loadExistingGrant,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  responseTypes: ['code'],
  // Auth0-style authorization parameters: accepted (and visible to interactions), never rejected.
  extraParams: ['audience', 'connection', 'organization', 'screen_hint', 'invitation'],
  // Put the scope-requested claims (email) in the ID token even when an access token is issued.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: DEVICE_FLOW },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    clientCredentials: { enabled: true },
    // Auth0-style `audience` (or RFC 8707 `resource`) names an API: its access token is then a
    // JWT with aud=<audience>. Without one, access tokens are opaque (userinfo accepts them).
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, _client, oneOf) => oneOf ?? (ctx.oidc.params?.audience || undefined),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => ({
        scope: settings.api_scopes,
        audience: resourceIndicator,
        accessTokenTTL: settings.access_token_ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // Refresh tokens only when offline_access was granted (default), rotated for public clients
  // (default rotateRefreshToken). See the /auth pre-processing below for the prompt quirk.
  issueRefreshToken: async (_ctx, client, code) => settings.issue_refresh_token
    && client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  ttl: {
    AccessToken: () => settings.access_token_ttl,
    AuthorizationCode: () => 60,
    DeviceCode: () => settings.device_code_ttl,
    Grant: () => 14 * 24 * 3600,
    IdToken: () => settings.id_token_ttl,
    Interaction: () => 3600,
    RefreshToken: () => settings.refresh_token_ttl,
    Session: () => 14 * 24 * 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>`
      + `<h1>oops! something went wrong</h1><pre id="error">${JSON.stringify(out).replace(/</g, '&lt;')}</pre>`
      + '</body></html>';
  },
};

const server = createServer({ cert: readFileSync(args.cert), key: readFileSync(args.key) });
await new Promise((resolve, reject) => {
  server.once('error', reject);
  if (args['listen-fd'] !== undefined) server.listen({ fd: Number.parseInt(args['listen-fd'], 10) }, resolve);
  else server.listen(Number.parseInt(args.port, 10), args.host, resolve);
});
const { port } = server.address();
const issuer = `https://${args.host}:${port}${ISSUER_PATH}`;
const provider = new Provider(issuer, configuration);

// --- Workload identity (issue 22) -----------------------------------------------------------
// A CI job's token (GitHub Actions, GitLab CI, a Kubernetes service account) is trusted when the
// issuer named in settings.workload_trust signed it for its audience. Two ways to trade it:
// RFC 8693 token exchange (a grant of its own, for exls-ci-client / exls-ci-confidential) and
// RFC 7523 client authentication (client_credentials with the CI token as client_assertion, for
// exls-ci-federated, as Entra ID's federated credentials do).
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const remoteKeySets = new Map();

const oauthError = (Kind, description) => Object.assign(new Kind(), { error_description: description });

async function verifyWorkloadToken(token, Kind) {
  const trust = settings.workload_trust;
  if (!trust) throw oauthError(Kind, 'no workload identity issuer is trusted');
  if (!remoteKeySets.has(trust.jwks_uri)) {
    remoteKeySets.set(trust.jwks_uri, createRemoteJWKSet(new URL(trust.jwks_uri), { cooldownDuration: 0 }));
  }
  try {
    const { payload } = await jwtVerify(String(token ?? ''), remoteKeySets.get(trust.jwks_uri), {
      issuer: trust.issuer, audience: trust.audience, algorithms: ['RS256'],
    });
    if (typeof payload.sub !== 'string' || !payload.sub) throw new joseErrors.JWTClaimValidationFailed('no sub', payload, 'sub');
    return payload;
  } catch (err) {
    if (!(err instanceof joseErrors.JOSEError)) throw err;
    throw oauthError(Kind, `the workload token is not trusted (${err.code})`);
  }
}

provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const { params, client } = ctx.oidc;
  const expectedType = settings.workload_trust?.subject_token_type ?? ID_TOKEN_TYPE;
  if (params.subject_token_type !== expectedType) {
    throw oauthError(errors.InvalidRequest, `unsupported subject_token_type (expected ${expectedType})`);
  }
  const claims = await verifyWorkloadToken(params.subject_token, errors.InvalidGrant);
  const audiences = settings.workload_trust.api_audiences;
  if (params.audience && Array.isArray(audiences) && !audiences.includes(params.audience)) {
    throw oauthError(errors.InvalidTarget, `unknown audience ${params.audience}`);
  }
  const allowed = new Set(['openid', ...settings.api_scopes.split(' ').filter(Boolean)]);
  const scope = String(params.scope ?? '').split(' ').filter((s) => allowed.has(s)).join(' ') || undefined;
  const grant = new provider.Grant({ accountId: claims.sub, clientId: client.clientId });
  grant.addOIDCScope('openid');
  const grantId = await grant.save();
  const token = new provider.AccessToken({
    accountId: claims.sub, client, grantId, gty: 'token_exchange', scope,
    extra: { workload_iss: claims.iss, ...(params.audience ? { api_audience: params.audience } : {}) },
  });
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(scope ? { scope } : {}),
  };
}, ['subject_token', 'subject_token_type', 'audience', 'scope', 'requested_token_type',
  'actor_token', 'actor_token_type']);

const ADMIN = '/__test__/';
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Route names of oidc-provider for the paths the pre-processing must match before routing.
const ROUTE_BY_PATH = {
  ...Object.fromEntries(Object.entries(ROUTES).filter(([name]) => name !== 'jwks')
    .map(([name, path]) => [path, name])),
  '/.well-known/openid-configuration': 'discovery',
};

async function readRaw(req) {
  const chunks = [];
  // destroyOnReturn: false, or finishing the loop would destroy the request (and its socket).
  for await (const chunk of req.iterator({ destroyOnReturn: false })) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function recordEvent(ctx, route, params, extra = {}) {
  const body = ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body) ? ctx.body : {};
  const event = {
    seq: ++seq,
    time: Date.now() / 1000,
    route,
    method: ctx.method,
    path: ctx.path,
    params,
    status: ctx.status,
    error: body.error ?? null,
    issued: Object.keys(body).filter((k) => k.endsWith('_token') || k === 'device_code'),
    ...extra,
  };
  if (route === 'token' && body.scope !== undefined) event.scope = body.scope;
  if (route === 'revocation') {
    // Which token the provider found and destroyed (null: unknown/already gone), and whether
    // the whole grant (all tokens of that login) went with it.
    const { RefreshToken, AccessToken } = ctx.oidc?.entities ?? {};
    event.revoked_kind = (RefreshToken ?? AccessToken)?.kind ?? null;
    event.grant_revoked = Boolean(ctx.state.grantRevoked);
  }
  if (route === 'authorization' && ctx.status >= 300 && ctx.status < 400) {
    event.location = ctx.response.get('location');
  }
  events.push(event);
}

// Admin endpoints.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith(ADMIN)) return next();
  const action = `${ctx.method} ${ctx.path.slice(ADMIN.length)}`;
  ctx.type = 'json';
  switch (action) {
    case 'GET events':
      ctx.body = events;
      return undefined;
    case 'POST reset':
      events = [];
      devicePolls.clear();
      settings = structuredClone(STARTUP_SETTINGS);
      ctx.body = { ok: true, settings };
      return undefined;
    case 'GET config':
      ctx.body = settings;
      return undefined;
    case 'POST config': {
      const patch = JSON.parse((await readRaw(ctx.req)) || '{}');
      const unknown = Object.keys(patch).filter((k) => !(k in STARTUP_SETTINGS));
      if (unknown.length) ctx.throw(400, `unknown settings: ${unknown.join(', ')}`);
      settings = { ...settings, ...patch };
      ctx.body = settings;
      return undefined;
    }
    case 'POST lookup': {
      const { token } = JSON.parse((await readRaw(ctx.req)) || '{}');
      for (const kind of ['RefreshToken', 'AccessToken', 'ClientCredentials']) {
        // eslint-disable-next-line no-await-in-loop
        const found = await provider[kind].find(token, { ignoreExpiration: true });
        if (found) {
          ctx.body = {
            kind,
            active: !found.isExpired && !found.consumed,
            consumed: Boolean(found.consumed),
            expired: found.isExpired,
            scope: found.scope,
            account_id: found.accountId,
          };
          return undefined;
        }
      }
      ctx.body = { kind: null, active: false };
      return undefined;
    }
    default:
      ctx.throw(404, `unknown admin action ${action}`);
  }
  return undefined;
});

// Recording, fault injection and small behavioural tweaks around the provider's own routes.
provider.use(async (ctx, next) => {
  const route = ctx.req.oauthMetadata ? 'oauth_metadata' : ROUTE_BY_PATH[ctx.path];
  let params = { ...ctx.query };
  if (route && ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
    // Parse the form here so faults can match on it; oidc-provider then reuses req.body.
    ctx.req.body = parseQuery(await readRaw(ctx.req));
    params = { ...params, ...ctx.req.body };
  }

  // RFC 7523 stand-in: check the federated client's assertion (the CI token), then let the
  // provider authenticate the client with a secret only this process knows.
  if (route === 'token' && params.client_assertion_type === JWT_BEARER
      && params.client_id === WORKLOAD_ASSERTION_CLIENT_ID) {
    try {
      const claims = await verifyWorkloadToken(params.client_assertion, errors.InvalidClient);
      ctx.state.workloadSubject = claims.sub;
    } catch (err) {
      if (!(err instanceof errors.InvalidClient)) throw err;
      ctx.status = 401;
      ctx.body = { error: 'invalid_client', error_description: err.error_description };
      ctx.set('cache-control', 'no-store');
      recordEvent(ctx, route, params);
      return;
    }
    const { client_assertion: _a, client_assertion_type: _t, ...rest } = ctx.req.body;
    ctx.req.body = { ...rest, client_secret: ASSERTION_STAND_IN_SECRET };
  }

  if (route) {
    const index = settings.inject.findIndex((rule) => rule.route === route
      && (!rule.grant_type || rule.grant_type === params.grant_type));
    if (index !== -1) {
      const rule = settings.inject[index];
      rule.times = (rule.times ?? 1) - 1;
      if (rule.times <= 0) settings.inject.splice(index, 1);
      if (rule.delay_ms) await sleep(rule.delay_ms);
      if (rule.error || rule.status) {
        ctx.status = rule.status ?? 400;
        ctx.body = rule.error
          ? { error: rule.error, error_description: rule.error_description ?? 'injected by the test' }
          : { message: 'injected by the test' };
        ctx.set('cache-control', 'no-store');
        recordEvent(ctx, route, params, { injected: true });
        return;
      }
    }
  }

  // RFC 8628 3.5: a client that polls faster than the interval gets slow_down (+5 s).
  if (route === 'oauth_metadata' && !settings.oauth_metadata) {
    ctx.status = 404;
    ctx.body = { error: 'not_found' };
    recordEvent(ctx, 'oauth_metadata', params);
    return;
  }

  if (route === 'token' && params.grant_type === 'urn:ietf:params:oauth:grant-type:device_code') {
    const state = devicePolls.get(params.device_code);
    const now = Date.now();
    let slowDown = false;
    if (settings.force_slow_down > 0) {
      settings.force_slow_down -= 1;
      slowDown = true;
    } else if (state && settings.enforce_slow_down && now - state.last < state.interval * 1000 - 250) {
      slowDown = true;
    }
    if (state) {
      state.last = now;
      if (slowDown) state.interval += settings.slow_down_increment;
    }
    if (slowDown) {
      ctx.status = 400;
      ctx.body = { error: 'slow_down', error_description: 'you are polling too quickly' };
      ctx.set('cache-control', 'no-store');
      recordEvent(ctx, route, params);
      return;
    }
  }

  // oidc-provider (OIDC Core 11) drops offline_access unless the request has prompt=consent;
  // Auth0 does not, and the CLI should not need it. So add `consent` to the prompt here: the
  // consent screen then shows on every such login and the refresh token is issued.
  if (route === 'authorization' && ctx.method === 'GET') {
    const scopes = String(ctx.query.scope ?? '').split(' ');
    const prompts = String(ctx.query.prompt ?? '').split(' ').filter(Boolean);
    if (scopes.includes('offline_access') && !prompts.includes('consent') && !prompts.includes('none')) {
      ctx.query = { ...ctx.query, prompt: [...prompts, 'consent'].join(' ') };
    }
  }

  await next();

  // The bundled pages @import a web font; keep the browser off the network.
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, '');
  }

  if (route === 'discovery' && ctx.status === 200 && ctx.body?.issuer) {
    const patched = { ...ctx.body, ...settings.discovery_patch };
    ctx.body = Object.fromEntries(Object.entries(patched).filter(([, v]) => v !== null));
  }
  if (route === 'oauth_metadata') recordEvent(ctx, route, params);

  if (route === 'token' && ctx.status === 200 && settings.drop_id_token.includes(params.grant_type)) {
    const { id_token: _dropped, ...rest } = ctx.body;
    ctx.body = rest;
  }

  if (route === 'device_authorization' && ctx.status === 200 && ctx.body?.device_code) {
    ctx.body = { ...ctx.body, interval: settings.device_interval };
    devicePolls.set(ctx.body.device_code, { last: 0, interval: settings.device_interval });
  }

  // With an API resource, oidc-provider answers only the API's scopes in `scope`; Auth0 lists
  // the OpenID ones too (openid email offline_access ...). Do the same.
  const entities = ctx.oidc?.entities ?? {};
  if (route === 'token' && ctx.status === 200 && typeof ctx.body?.scope === 'string'
      && entities.AccessToken?.resourceServer) {
    const source = entities.AuthorizationCode ?? entities.RefreshToken ?? entities.DeviceCode;
    const scopes = new Set([...String(source?.scope ?? '').split(' '), ...ctx.body.scope.split(' ')]);
    scopes.delete('');
    ctx.body = { ...ctx.body, scope: [...scopes].join(' ') };
  }

  const oidcRoute = ctx.oidc?.route;
  if (oidcRoute && oidcRoute !== 'discovery' && oidcRoute !== 'jwks') {
    recordEvent(ctx, oidcRoute, { ...params, ...(ctx.oidc.body ?? {}) });
  }
});

provider.on('grant.revoked', (ctx) => { ctx.state.grantRevoked = true; });
provider.on('server_error', (ctx, err) => { console.error('server_error', ctx.path, err); });

// Serve the provider under MOUNT as express's app.use(MOUNT, ...) would (oidc-provider builds
// its URLs from req.originalUrl or req.baseUrl), and the RFC 8414 metadata at the host's root.
const handle = provider.callback();
server.on('request', (req, res) => {
  const [path, query] = req.url.split(/\?(.*)/s);
  const search = query === undefined ? '' : `?${query}`;
  if (path === OAUTH_METADATA_PATH) {
    req.oauthMetadata = true;
    req.originalUrl = `${MOUNT}/.well-known/openid-configuration${search}`;
    req.url = `/.well-known/openid-configuration${search}`;
  } else if (MOUNT) {
    if (path !== MOUNT && !path.startsWith(`${MOUNT}/`)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || '/';
  }
  // Where the mount path comes from once the pre-processing above has rewritten the query.
  req.baseUrl = MOUNT;
  handle(req, res);
});
process.stdout.write(`${JSON.stringify({
  event: 'listening', issuer, port, client_id: CLIENT_ID, redirect_uris: REDIRECT_URIS, pid: process.pid,
})}\n`);

// Keep-alive connections (browser, requests sessions) would hold close() open: drop them.
const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
