// Records every platform's optional binary package in package-lock.json.
//
// The registry this project is developed against serves only the Linux builds of packages such as
// @swc/core-* and @unrs/resolver-binding-* (jest 30), so `npm install` here leaves the other platforms
// out of the lock file, and `npm ci` then refuses the lock as out of sync. An entry with the package's
// os/cpu/libc is all npm ci needs to skip it on a machine it does not fit. Run after `npm install`.
import { readFileSync, writeFileSync } from 'node:fs';

const PLATFORM =
  /-(darwin|linux|win32|android|freebsd|openharmony)-(arm64|x64|arm|ia32|ppc64|s390x|loong64|riscv64)(?:-(gnu|musl|gnueabihf|musleabihf|eabi|msvc))?$/;

function constraints(name) {
  const m = PLATFORM.exec(name);
  if (!m) return {};
  const libc = { gnu: 'glibc', gnueabihf: 'glibc', musl: 'musl', musleabihf: 'musl' }[m[3]];
  return { os: [m[1]], cpu: [m[2]], ...(libc ? { libc: [libc] } : {}) };
}

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const packages = lock.packages;
let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, range] of Object.entries(entry.optionalDependencies ?? {})) {
    if (packages[`node_modules/${dep}`] || packages[`${path}/node_modules/${dep}`]) continue;
    packages[`node_modules/${dep}`] = {
      version: range.replace(/^[\^~=]/, ''),
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      ...constraints(dep),
    };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: recorded ${added} optional platform packages`);
