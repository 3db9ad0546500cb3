// Step 1 of `ovr-train native`: find TensorFlow's C libraries and headers in a PyPI wheel, the way TensorFlow Java
// builds its binding since 1.0 (tensorflow/java PR #521, scripts/dist_download.sh): TF >= 2.12 wheels ship
// `tensorflow/libtensorflow_cc.so.2` (exports every TF_* / TFE_* symbol) + `libtensorflow_framework.so.2`, and the
// headers under `tensorflow/include/`. Sources: a wheel file, an installed Python TensorFlow, or pip (CPU: `pip
// download tensorflow-cpu`; GPU: `pip install tensorflow[and-cuda]` into a venv, so the `nvidia-*-cu12` wheels sit
// where the TF libraries' RUNPATH `$ORIGIN/../nvidia/...` expects them). Facts: ../shared/research/native_tensorflow.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

/** TF release the builder asks pip for (the newest tested here). */
export const TF_PIP_SPEC = '2.21.*';

/** An error of one build step; the message says what to install or pass. */
export class NativeBuildError extends Error {
  override name = 'NativeBuildError';
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(`ovr-train native, step '${step}': ${message}`);
  }
}

/** Where TensorFlow's libraries are: `dir` holds the two .so.2 files, `include` the C headers. */
export interface TfLibs {
  dir: string;
  include: string;
  /** Where they came from (wheel file, python, pip). */
  source: string;
}

export interface LibsOptions {
  gpu: boolean;
  wheel?: string;
  python?: string;
  cache: string;
  log: (line: string) => void;
}

/** Result of one external command. */
export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/** Runs a command synchronously (inherits nothing but the env); never throws. */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

/** The last lines of a command's output, for an error message. */
export function tail(r: RunResult, n = 8): string {
  const text = `${r.stderr}\n${r.stdout}`.trim() || String(r.error?.message ?? '');
  return text.split('\n').slice(-n).join('\n');
}

/** Checks that `dir` (a wheel's `tensorflow/` folder) has both libraries and the C headers. */
export function checkTfDir(dir: string, step: string, source: string): TfLibs {
  for (const f of ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'])
    if (!existsSync(path.join(dir, f)))
      throw new NativeBuildError(
        step,
        `${source} has no ${path.join(dir, f)}: TensorFlow >= 2.12 wheels ship it; use tensorflow-cpu==${TF_PIP_SPEC} (or tensorflow==${TF_PIP_SPEC} with --gpu).`,
      );
  const include = path.join(dir, 'include');
  if (!existsSync(path.join(include, 'tensorflow/c/eager/c_api.h')))
    throw new NativeBuildError(step, `${source} has no C headers at ${include}/tensorflow/c/eager/c_api.h.`);
  return { dir, include, source };
}

function python(opts: LibsOptions): string {
  return opts.python ?? 'python3';
}

/** Extracts only the libraries and headers of a wheel into `cache/tf-<wheel name>/` (atomic: temp dir + rename). */
export function unpackWheel(wheel: string, opts: LibsOptions): TfLibs {
  const step = 'tensorflow libraries';
  if (!existsSync(wheel) || !wheel.endsWith('.whl'))
    throw new NativeBuildError(step, `wheel file '${wheel}' not found (pass a tensorflow*.whl file).`);
  const dest = path.join(opts.cache, `tf-${path.basename(wheel, '.whl')}`);
  const dir = path.join(dest, 'tensorflow');
  if (existsSync(path.join(dir, 'libtensorflow_cc.so.2'))) return checkTfDir(dir, step, wheel);
  const tmp = `${dest}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  opts.log(`native: unpacking ${path.basename(wheel)} (libraries + headers) into ${dest}`);
  const script =
    'import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\n' +
    "for n in z.namelist():\n    if n.startswith(('tensorflow/include/', 'tensorflow/libtensorflow')): z.extract(n, sys.argv[2])";
  let r = run(python(opts), ['-c', script, wheel, tmp]);
  if (r.status !== 0)
    r = run('unzip', ['-q', '-o', wheel, 'tensorflow/libtensorflow*', 'tensorflow/include/*', '-d', tmp]);
  if (r.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new NativeBuildError(step, `could not unpack ${wheel} (needs python3 or unzip):\n${tail(r)}`);
  }
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);
  return checkTfDir(dir, step, wheel);
}

/** The `tensorflow` package folder of a Python install, found without importing it (no TF start-up). */
export function pythonTfDir(py: string, step: string): string {
  const r = run(py, [
    '-c',
    "import importlib.util as u; s = u.find_spec('tensorflow'); print(s.submodule_search_locations[0] if s else '')",
  ]);
  if (r.error || r.status !== 0)
    throw new NativeBuildError(
      step,
      `could not run '${py}' (install Python 3 or pass --python PY):\n${tail(r)}`,
    );
  const dir = r.stdout.trim();
  if (!dir)
    throw new NativeBuildError(
      step,
      `'${py}' has no tensorflow package: pip install tensorflow-cpu==${TF_PIP_SPEC}, or leave out --python to let ovr download it.`,
    );
  return dir;
}

/** CPU: `pip download tensorflow-cpu==2.21.*` (no dependencies: only the wheel's files are used) into cache/wheels. */
function pipDownloadCpu(opts: LibsOptions): TfLibs {
  const step = 'tensorflow libraries';
  const wheels = path.join(opts.cache, 'wheels');
  const found = () =>
    existsSync(wheels) ? readdirSync(wheels).filter((f) => /^tensorflow_cpu-2\.21\..*\.whl$/.test(f)) : [];
  if (found().length === 0) {
    mkdirSync(wheels, { recursive: true });
    opts.log(`native: pip download tensorflow-cpu==${TF_PIP_SPEC} into ${wheels} (~270 MB, once)`);
    const r = run(python(opts), [
      ...['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check'],
      ...['-d', wheels, `tensorflow-cpu==${TF_PIP_SPEC}`],
    ]);
    if (r.status !== 0)
      throw new NativeBuildError(
        step,
        `pip download tensorflow-cpu failed (needs Python 3.10-3.13 with pip on Linux x86_64: apt-get install python3-pip; or pass --tensorflow-wheel FILE):\n${tail(r)}`,
      );
  }
  return unpackWheel(path.join(wheels, found().sort().at(-1) as string), opts);
}

/** GPU: a venv with `tensorflow[and-cuda]==2.21.*` (CUDA 12 + cuDNN 9 as nvidia-*-cu12 wheels), kept in the cache. */
function pipInstallGpu(opts: LibsOptions): TfLibs {
  const step = 'tensorflow libraries';
  const venv = path.join(opts.cache, 'venv-tf-gpu');
  const vpy = path.join(venv, 'bin', 'python');
  if (!existsSync(vpy)) {
    opts.log(`native: creating ${venv}`);
    const r = run(python(opts), ['-m', 'venv', venv]);
    if (r.status !== 0)
      throw new NativeBuildError(step, `python -m venv failed (apt-get install python3-venv):\n${tail(r)}`);
  }
  const has = run(vpy, ['-c', "import importlib.util as u; print(bool(u.find_spec('tensorflow')))"]);
  if (has.stdout.trim() !== 'True') {
    opts.log(`native: pip install tensorflow[and-cuda]==${TF_PIP_SPEC} into ${venv} (several GB, once)`);
    const r = run(vpy, [
      '-m',
      'pip',
      'install',
      '--disable-pip-version-check',
      `tensorflow[and-cuda]==${TF_PIP_SPEC}`,
    ]);
    if (r.status !== 0)
      throw new NativeBuildError(step, `pip install tensorflow[and-cuda] failed:\n${tail(r)}`);
  }
  return checkTfDir(pythonTfDir(vpy, step), step, venv);
}

/**
 * Step 1: TensorFlow's libraries and headers, from (in this order) `wheel`, `python`'s installed tensorflow, or pip.
 * @example findTfLibs({ gpu: false, cache: '~/.cache/ovr/native', log: console.log }).dir // …/tf-…/tensorflow
 */
export function findTfLibs(opts: LibsOptions): TfLibs {
  const step = 'tensorflow libraries';
  if (opts.wheel) return unpackWheel(path.resolve(opts.wheel), opts);
  if (opts.python) return checkTfDir(pythonTfDir(opts.python, step), step, `${opts.python}'s tensorflow`);
  return opts.gpu ? pipInstallGpu(opts) : pipDownloadCpu(opts);
}
