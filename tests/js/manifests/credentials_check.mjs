// Runs the credential steps of the shipped deployment with the real volguard binary, and checks
// the results as the server would (`volguard token verify` with the config each node renders):
// - the DaemonSet's init containers (render-config, node-credential) and one round of
//   node-credential-refresher, exactly as written in the manifest: Kubernetes' $(VAR)
//   expansion, the image's ENTRYPOINT, and each volume mounted under a scratch directory;
// - make-secrets.sh (install, tenant, controller-token) against a stand-in kubectl that keeps
//   Secrets in files.
//   node credentials_check.mjs VOLGUARD DEPLOY_DIR
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

const [vg, deploy] = process.argv.slice(2).map((p) => path.resolve(p));
const NODE = 'worker-1.example';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'volguard-k8s-'));
process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));

let passed = 0;
let failed = 0;
function check(what, ok, detail = '') {
  if (ok) {
    passed++;
    console.log(`ok   ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${detail ? `\n  ${detail}` : ''}`);
  }
}

const docs = fs.readdirSync(deploy).filter((f) => /\.ya?ml$/.test(f)).sort()
  .flatMap((f) => parseAllDocuments(fs.readFileSync(path.join(deploy, f), 'utf8'), { version: '1.1' }))
  .map((d) => d.toJS({ maxAliasCount: 100 })).filter(Boolean);
const find = (kind, name) => docs.find((d) => d.kind === kind && d.metadata?.name === name);

// A directory of helper commands first on PATH: `volguard` (the image's binary) and a `sleep`
// that returns at once the first time and fails the second (one round of a `while sleep` loop).
const bin = path.join(root, 'bin');
fs.mkdirSync(bin);
fs.symlinkSync(vg, path.join(bin, 'volguard'));
fs.writeFileSync(path.join(bin, 'sleep'),
  '#!/bin/sh\nf="$(dirname "$0")/.slept"\n[ -e "$f" ] && exit 1\n: > "$f"\n', { mode: 0o755 });

// `volguard token verify` as the server: the issuer secret in the env the config names.
function verify(config, token, secret) {
  try {
    const out = execFileSync(vg, ['token', 'verify', '--config', config, '-'], {
      input: token, env: { ...process.env, VOLGUARD_SHARED_SECRET: secret }, encoding: 'utf8', stdio: 'pipe',
    });
    return JSON.parse(out);
  } catch (e) {
    return { error: `${e.stderr || e.message}` };
  }
}
const days = (claims) => (Date.parse(claims.expires_at) - Date.now()) / 86400e3;
const near = (value, want) => Math.abs(value - want) < 0.1;

// ---------------------------------------------------------------------------------------------
// The node pod.

const ds = find('DaemonSet', 'volguard');
const pod = ds.spec.template.spec;
const configMap = find('ConfigMap', 'volguard-config');
const sharedSecret = execFileSync('openssl', ['rand', '-base64', '48'], { encoding: 'utf8' }).trim();
const secrets = {
  'volguard-shared-secret': { 'shared-secret': sharedSecret },
  'volguard-audit-key': { 'audit-key': 'k'.repeat(44) },
};

// Each volume of the pod as a directory: configMap and secret volumes filled with their keys.
const volumeDir = {};
for (const v of pod.volumes) {
  const dir = path.join(root, 'volumes', v.name);
  volumeDir[v.name] = dir;
  fs.mkdirSync(dir, { recursive: true });
  const files = v.configMap ? find('ConfigMap', v.configMap.name)?.data
    : v.secret ? secrets[v.secret.secretName] : null;
  for (const [key, value] of Object.entries(files || {})) {
    fs.writeFileSync(path.join(dir, key), value, { mode: v.secret?.defaultMode ?? 0o644 });
  }
}

// Paths as the container sees them -> the scratch directories.
function mapper(container) {
  const mounts = (container.volumeMounts || []).map((m) => [m.mountPath, volumeDir[m.name]])
    .sort((a, b) => b[0].length - a[0].length);
  return (s) => mounts.reduce((acc, [from, to]) => acc.split(from).join(to), s);
}

function envOf(container) {
  const env = {};
  for (const e of container.env || []) {
    if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[e.name] = NODE;
    else if (e.value !== undefined) env[e.name] = e.value;
  }
  return env;
}

// Runs a container's command as kubelet would start it, with the mounts mapped.
function runContainer(container) {
  const env = envOf(container);
  const expand = (s) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => (n in env ? env[n] : m));
  const map = mapper(container);
  const argv = [...(container.command || ['volguard']), ...(container.args || [])].map((a) => map(expand(a)));
  try {
    execFileSync(argv[0] === 'volguard' ? vg : argv[0], argv.slice(1), {
      env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8', stdio: 'pipe',
    });
    return '';
  } catch (e) {
    return `${e.stderr || e.message}`;
  }
}

const byName = (list, name) => (list || []).find((c) => c.name === name);
for (const init of pod.initContainers) {
  const err = runContainer(init);
  check(`init container ${init.name} runs`, err === '', err);
}
const server = byName(pod.containers, 'volguard-server');
const plugin = byName(pod.containers, 'csi-plugin');
const config = mapper(server)(server.args[server.args.indexOf('--config') + 1]);
const rendered = fs.existsSync(config) ? fs.readFileSync(config, 'utf8') : '';
check('the server config names this node', rendered.includes(`nodes: ["${NODE}"]`), rendered.split('\n')[2]);
check('the server takes this node\'s name as its own', /\nnode:\n {2}name: "([^"]*)"\n/.exec(rendered)?.[1] === NODE,
  /\nnode:\n.*/.exec(rendered)?.[0]);
check('the server config is the ConfigMap with the node name in',
  rendered === configMap.data['volguard.yaml'].replaceAll('@NODE_NAME@', NODE));

const tokenFile = mapper(plugin)(plugin.args[plugin.args.indexOf('--node-token-file') + 1]);
const readToken = () => (fs.existsSync(tokenFile) ? fs.readFileSync(tokenFile, 'utf8') : '');
let claims = verify(config, readToken(), sharedSecret);
check('the node credential verifies with the server config', !claims.error, claims.error);
check('the node credential is this node, role system.node',
  claims.username === NODE && JSON.stringify(claims.roles) === '["system.node"]', JSON.stringify(claims));
check('the node credential lasts 30 days', near(days(claims), 30), claims.expires_at);
check('the node credential file is private', (fs.statSync(tokenFile).mode & 0o077) === 0);
check('a token from another issuer secret is refused',
  verify(config, readToken(), 'x'.repeat(64)).error !== undefined);

// One round of the refresher: the token is minted again and renamed into place.
fs.rmSync(tokenFile);
const refresher = byName(pod.containers, 'node-credential-refresher');
const refreshErr = runContainer(refresher);
claims = verify(config, readToken(), sharedSecret);
check('node-credential-refresher re-mints the same credential (this node, system.node, 30 days)',
  !claims.error && claims.username === NODE && JSON.stringify(claims.roles) === '["system.node"]' &&
  near(days(claims), 30), refreshErr || claims.error || JSON.stringify(claims));
check('node-credential-refresher leaves no partial file', !fs.existsSync(`${tokenFile}.next`));

// ---------------------------------------------------------------------------------------------
// make-secrets.sh against a kubectl that keeps Secrets as STORE/<namespace>/<name>/<key>.

const store = path.join(root, 'cluster');
fs.writeFileSync(path.join(bin, 'kubectl'), `#!/usr/bin/env bash
set -euo pipefail
store=${JSON.stringify(store)}
ns=default
if [ "$1" = -n ]; then ns=$2; shift 2; fi
case "$1 $2" in
  "create secret")
    name=$4; spec=\${5#--from-file=}; key=\${spec%%=*}; file=\${spec#*=}
    if [ "\${6:-}" = --dry-run=client ]; then
      printf '%s %s %s %s\\n' "$ns" "$name" "$key" "$(base64 -w0 < "$file")"; exit 0
    fi
    [ -e "$store/$ns/$name" ] && { echo "secrets \\"$name\\" already exists" >&2; exit 1; }
    mkdir -p "$store/$ns/$name"; cp "$file" "$store/$ns/$name/$key" ;;
  "apply -f")
    read -r ns name key data
    rm -rf "$store/$ns/$name"; mkdir -p "$store/$ns/$name"
    printf '%s' "$data" | base64 -d > "$store/$ns/$name/$key" ;;
  "get secret")
    name=$3; path=\${5#jsonpath=\\{.data.}; key=\${path%\\}}
    [ -e "$store/$ns/$name/$key" ] || { echo "secrets \\"$name\\" not found" >&2; exit 1; }
    base64 -w0 < "$store/$ns/$name/$key" ;;
  *) echo "kubectl stand-in: unexpected: $*" >&2; exit 2 ;;
esac
`, { mode: 0o755 });

function makeSecrets(...args) {
  try {
    execFileSync('bash', [path.join(deploy, 'make-secrets.sh'), ...args], {
      env: { ...process.env, VG: vg, PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8', stdio: 'pipe',
    });
    return '';
  } catch (e) {
    return `${e.stderr || e.message}`;
  }
}
const stored = (ns, name, key) => {
  const f = path.join(store, ns, name, key);
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
};

let err = makeSecrets();
check('make-secrets.sh installs', err === '', err);
const clusterSecret = stored('kube-system', 'volguard-shared-secret', 'shared-secret');
check('the issuer secret is strong', Buffer.from(clusterSecret, 'base64').length >= 32);
check('the audit key is there', stored('kube-system', 'volguard-audit-key', 'audit-key').length >= 32);
const expectToken = (what, ns, name, key, want) => {
  const c = verify(config, stored(ns, name, key), clusterSecret);
  const ok = !c.error && c.username === want.user && JSON.stringify(c.roles) === JSON.stringify(want.roles) &&
    (!want.groups || JSON.stringify(c.groups) === JSON.stringify(want.groups)) && near(days(c), want.days);
  check(what, ok, c.error || JSON.stringify(c));
};
expectToken('px-admin-token: admin, system.admin', 'kube-system', 'px-admin-token', 'auth-token',
  { user: 'admin', roles: ['system.admin'], days: 30 });
expectToken('px-user-token: user, system.user', 'kube-system', 'px-user-token', 'auth-token',
  { user: 'user', roles: ['system.user'], days: 30 });

// The controller's credential is where the Deployment mounts it, for role system.csi-controller.
const ctl = find('Deployment', 'volguard-csi-controller').spec.template.spec;
const ctlPlugin = byName(ctl.containers, 'csi-plugin');
const ctlFile = ctlPlugin.args[ctlPlugin.args.indexOf('--controller-token-file') + 1];
const ctlMount = ctlPlugin.volumeMounts.find((m) => ctlFile.startsWith(`${m.mountPath}/`));
const ctlSecret = ctl.volumes.find((v) => v.name === ctlMount.name).secret.secretName;
expectToken(`${ctlSecret}: the controller credential the Deployment mounts`, 'kube-system', ctlSecret,
  path.basename(ctlFile), { user: 'csi-controller', roles: ['system.csi-controller'], days: 90 });

err = makeSecrets();
check('a second install refuses to replace the issuer secret',
  err !== '' && stored('kube-system', 'volguard-shared-secret', 'shared-secret') === clusterSecret, err);

err = makeSecrets('tenant', 'team-a');
check('tenant team-a', err === '', err);
expectToken('team-a/px-user-token: subject and group team-a, system.user, 30 days', 'team-a', 'px-user-token',
  'auth-token', { user: 'team-a', roles: ['system.user'], groups: ['team-a'], days: 30 });
err = makeSecrets('tenant', 'team-a', 'system.view', '7d');
expectToken('the tenant token is replaced in place (rotation)', 'team-a', 'px-user-token', 'auth-token',
  { user: 'team-a', roles: ['system.view'], days: 7 });

fs.rmSync(path.join(store, 'kube-system', ctlSecret), { recursive: true });
err = makeSecrets('controller-token');
expectToken('controller-token re-mints the controller credential', 'kube-system', ctlSecret,
  path.basename(ctlFile), { user: 'csi-controller', roles: ['system.csi-controller'], days: 90 });
check('make-secrets.sh refuses an unknown command', makeSecrets('bogus') !== '');

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
