// Offline schema check of the Kubernetes manifests with npm kubernetes-models: each object is
// validated against the Kubernetes OpenAPI schema of its kind (compiled validators), and
// strictly: a field the schema does not know (what `kubectl apply --validate=strict` refuses,
// and what a plain schema check lets through) is an error too.
//   node schema_check.mjs FILE_OR_DIR...      (a directory: its *.yaml files, not subdirectories)
// Prints one line per object and "N passed, N failed"; exits 1 on any failure. A self-test
// first proves the checker catches a wrong type, a missing field and an unknown field.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
// The messages kubernetes-models itself gives (its validators are precompiled without them).
import localizeEn from 'ajv-i18n/localize/en/index.js';

// apiVersion -> the schema name prefix in kubernetes-models/_schemas. Kinds of other groups
// (CRDs) have no schema there: they must be listed in `structural` below.
const GROUPS = {
  v1: 'IoK8sApiCoreV1',
  'apps/v1': 'IoK8sApiAppsV1',
  'rbac.authorization.k8s.io/v1': 'IoK8sApiRbacV1',
  'storage.k8s.io/v1': 'IoK8sApiStorageV1',
};

async function schemaFor(apiVersion, kind) {
  const prefix = GROUPS[apiVersion];
  if (!prefix) return null;
  try {
    return (await import(`kubernetes-models/_schemas/${prefix}${kind}`)).validate;
  } catch {
    return null;
  }
}

// Runs `validate` on `obj` through proxies that record every property the validator reads: a
// validator reads each property its schema defines (and every key of a free-form map), so a
// key never read is unknown to the schema.
function validateStrict(validate, obj) {
  const read = new WeakMap();
  const proxies = new WeakMap();
  const wrap = (v) => {
    if (v === null || typeof v !== 'object') return v;
    if (!proxies.has(v)) {
      read.set(v, new Set());
      proxies.set(v, new Proxy(v, {
        get(target, key, receiver) {
          if (typeof key === 'string') read.get(target).add(key);
          return wrap(Reflect.get(target, key, receiver));
        },
      }));
    }
    return proxies.get(v);
  };
  const errors = [];
  if (!validate(wrap(obj))) {
    const found = validate.errors || [];
    localizeEn(found);
    for (const e of found) errors.push(`${e.instancePath || '/'} ${e.message}`);
  }
  const walk = (v, path) => {
    if (v === null || typeof v !== 'object') return;
    const seen = read.get(v);
    for (const key of Object.keys(v)) {
      if (!Array.isArray(v) && (!seen || !seen.has(key))) errors.push(`${path}/${key} is not a field of the schema`);
      walk(v[key], `${path}/${key}`);
    }
  };
  walk(obj, '');
  return errors;
}

// CRD kinds kubernetes-models does not ship: their metadata is checked against ObjectMeta and
// their top level by hand (snapshot.storage.k8s.io/v1 VolumeSnapshotClass, external-snapshotter
// client/config/crd).
const structural = {
  'snapshot.storage.k8s.io/v1/VolumeSnapshotClass': async (obj) => {
    const errors = [];
    const allowed = new Set(['apiVersion', 'kind', 'metadata', 'driver', 'deletionPolicy', 'parameters']);
    for (const key of Object.keys(obj)) if (!allowed.has(key)) errors.push(`/${key} is not a field of VolumeSnapshotClass`);
    if (typeof obj.driver !== 'string' || !obj.driver) errors.push('/driver must be a non-empty string');
    if (!['Delete', 'Retain'].includes(obj.deletionPolicy)) errors.push('/deletionPolicy must be Delete or Retain');
    for (const [k, v] of Object.entries(obj.parameters || {})) {
      if (typeof v !== 'string') errors.push(`/parameters/${k} must be string`);
    }
    const meta = (await import('@kubernetes-models/apimachinery/_schemas/IoK8sApimachineryPkgApisMetaV1ObjectMeta')).validate;
    errors.push(...validateStrict(meta, obj.metadata || {}).map((e) => `/metadata${e}`));
    return errors;
  },
};

async function check(obj) {
  const id = `${obj?.apiVersion}/${obj?.kind}`;
  if (structural[id]) return structural[id](obj);
  const validate = await schemaFor(obj?.apiVersion, obj?.kind);
  if (!validate) return [`no schema for ${id}: add its group to GROUPS or a check to structural`];
  return validateStrict(validate, obj);
}

async function selfTest() {
  const good = {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x', labels: { a: 'b' } },
    spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } },
      spec: { containers: [{ name: 'c', image: 'i:1', resources: { requests: { cpu: '10m' } } }] } } },
  };
  const expect = async (obj, want) => {
    const errors = await check(obj);
    const ok = want === null ? errors.length === 0 : errors.some((e) => e.includes(want));
    if (!ok) throw new Error(`self-test: expected ${want ?? 'no error'}, got ${JSON.stringify(errors)}`);
  };
  await expect(good, null);
  const typo = structuredClone(good);
  typo.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
  await expect(typo, '/spec/template/spec/containers/0/imagePullPolicyy is not a field');
  const type = structuredClone(good);
  type.spec.replicas = 'one';
  await expect(type, '/spec/replicas must be integer');
  const missing = structuredClone(good);
  delete missing.spec.template.spec.containers[0].name;
  await expect(missing, 'must have required property name');
  await expect({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }, 'no schema');
  await expect({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshotClass', metadata: { name: 's' },
    driver: 'd', deletionPolicy: 'Keep' }, 'deletionPolicy');
}

function yamlFiles(arg) {
  if (!statSync(arg).isDirectory()) return [arg];
  return readdirSync(arg).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(arg, f));
}

await selfTest();
let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2).flatMap(yamlFiles)) {
  // YAML 1.1, as kubectl reads manifests (0400 is octal there).
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' })) {
    if (doc.errors.length) {
      console.log(`FAIL ${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      failed++;
      continue;
    }
    const obj = doc.toJS({ maxAliasCount: 100 });
    if (obj === null || obj === undefined) continue;
    const name = `${file.split('/').slice(-2).join('/')} ${obj.kind}/${obj.metadata?.name}`;
    const errors = await check(obj);
    if (errors.length) {
      console.log(`FAIL ${name}\n  ${errors.join('\n  ')}`);
      failed++;
    } else {
      console.log(`ok   ${name}`);
      passed++;
    }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
