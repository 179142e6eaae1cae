// A real OpenID Connect provider on loopback for the web inbox's browser tests (oidc-provider).
//
//   node provider.mjs PORT REDIRECT_URI
//
// Issuer http://127.0.0.1:PORT; one confidential client `countersign` (secret
// `countersign-test-secret`) that must use PKCE; accounts `dana` and `alice` whose verified
// emails match principals of the test configuration. The login page is this script's own, with
// nothing loaded from outside the machine; consent is implied for the one first-party client.
// Prints "ready" on stdout once it listens.

import Provider from "oidc-provider";

const [port, redirectUri] = process.argv.slice(2);
if (!port || !redirectUri) {
  console.error("usage: node provider.mjs PORT REDIRECT_URI");
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const accounts = {
  dana: { email: "dana@example.test", groups: ["countersign-reviewers", "dba"] },
  alice: { email: "alice@example.test", groups: ["countersign-reviewers", "eng"] },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "countersign",
      client_secret: "countersign-test-secret",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  pkce: { required: () => true },
  claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
  scopes: ["openid", "email", "groups"],
  // Put the email and groups in the ID token itself, which is all Countersign reads.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ["countersign-oidc-test-peer"] },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      claims: async () => ({ sub: id, email: account.email, email_verified: true, groups: account.groups }),
    };
  },
  // A first-party client: grant what it asks for without a consent page.
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid email groups");
    await grant.save();
    return grant;
  },
});

const page = (uid, error) => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Test identity provider</title></head><body>
<h1>Test identity provider</h1>${error ? `<p role="alert">${error}</p>` : ""}
<form method="post" action="/interaction/${uid}">
<label for="login">Account</label> <input id="login" name="login" autofocus>
<label for="password">Password</label> <input id="password" name="password" type="password">
<button type="submit" id="submit">Sign in</button></form></body></html>`;

async function readForm(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === "GET") {
    ctx.type = "html";
    ctx.body = page(details.uid);
    return;
  }
  const form = await readForm(ctx.req);
  const login = form.get("login") || "";
  if (!accounts[login]) {
    ctx.type = "html";
    ctx.body = page(details.uid, "No such account.");
    return;
  }
  await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  ctx.respond = false;
});

provider.listen(Number(port), "127.0.0.1", () => {
  console.log("ready");
});
