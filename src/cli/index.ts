// ovr-train command-line entry: `ovr-train <command> [flags]`.
// Each command lives in its own module and exports `(argv) => Promise<exit code>`; they are loaded lazily so that
// `ovr-train grade` does not pay for tfjs, and `ovr-train sft` does not pay for the CAS.

type Command = { summary: string; load: () => Promise<(argv: string[]) => Promise<number>> };

const COMMANDS: Record<string, Command> = {
  // Commands register here: name -> summary + lazy loader.
  grade: {
    summary: 'grade predictions against gold answers with the math verifier',
    load: async () => (await import('./grade.js')).gradeCommand,
  },
  behaviors: {
    summary: 'cognitive-behaviour rates per step of a rollouts JSONL',
    load: async () => (await import('./behaviors.js')).behaviorsCommand,
  },
  sft: {
    summary: 'supervised fine-tuning (linguistic cold start) on JSONL chat or question/solution rows',
    load: async () => (await import('./sft.js')).sftCommand,
  },
  generate: {
    summary: 'complete one prompt (optionally with an image) from a model or checkpoint dir',
    load: async () => (await import('./generate.js')).generateCommand,
  },
  demo: {
    summary: 'the OVR pipeline in miniature: text SFT cold start, then GRPO on images (offline, <= 10 min)',
    load: async () => (await import('./demo.js')).demoCommand,
  },
  eval: {
    summary: 'evaluate a model on MATH500 / MATH-Vision / MathVerse-style JSONL (pass@1 or avg@K)',
    load: async () => (await import('./eval.js')).evalCommand,
  },
  native: {
    summary:
      "build the 'tensorflow' backend from TensorFlow's PyPI wheel (tfjs-node 4.22 binding; --gpu for CUDA 12)",
    load: async () => (await import('./native.js')).nativeCommand,
  },
  merge: {
    summary: 'fold a PEFT LoRA adapter into its base model: a full HF checkpoint',
    load: async () => (await import('./merge.js')).mergeCommand,
  },
  plan: {
    summary: 'memory plan of a training step on one device (weights, grads, AdamW, activations, KV)',
    load: async () => (await import('./plan.js')).planCommand,
  },
  serve: {
    summary: 'serve a model for rollouts (SGLang /generate, OpenAI /v1/completions + /v1/chat/completions)',
    load: async () => (await import('./serve.js')).serveCommand,
  },
  ppo: {
    summary: 'PPO with a learned critic and GAE (the OVR/ORZ RL setting): grpo --advantage gae',
    load: async () => {
      const { grpoCommand } = await import('./grpo.js');
      return (argv) => grpoCommand(['--advantage', 'gae', ...argv]);
    },
  },
  average: {
    summary: "uniform or weighted average of checkpoints or LoRA adapters (the paper's final model)",
    load: async () => (await import('./average.js')).averageCommand,
  },
  grpo: {
    summary: 'GRPO RL with the verifiable math reward (ORZ/DAPO style), rollouts.jsonl + per-step log',
    load: async () => (await import('./grpo.js')).grpoCommand,
  },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return [
    'Usage: ovr-train <command> [flags]   (ovr-train <command> --help for its flags)',
    '',
    'Commands:',
    ...rows,
    '',
    'Environment: OVR_BACKEND=auto|wasm|cpu|webgpu|tensorflow picks the tfjs backend;',
    '  OVR_WASM_THREADS=2 (experimental) runs tfjs-wasm on 2 threads (patches tfjs internals; docs/performance.md).',
  ].join('\n');
}

/** Runs one CLI command; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`ovr-train: unknown command '${name}'.\n\n${usage()}`);
    return 2;
  }
  const threads = process.env.OVR_WASM_THREADS?.trim();
  if (threads && threads !== '1') {
    // Opt-in, experimental: tfjs-wasm's threaded build under Node (docs/performance.md); before any backend init.
    const { enableWasmThreads } = await import('../backend/wasm_threads.js');
    try {
      enableWasmThreads(Number(threads));
    } catch (e) {
      console.error(`ovr-train: OVR_WASM_THREADS=${threads}: ${(e as Error).message}`);
      return 2;
    }
  }
  const run = await cmd.load();
  return run(rest);
}

/**
 * The `ovr-train` process entry (bin/ovr-train.js): runs main, sets the exit code, and exits explicitly when
 * OVR_WASM_THREADS enabled the threaded wasm backend, whose worker pool would keep Node alive after the command.
 */
export async function runAndExit(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  }
  const { wasmThreadsEnabled } = await import('../backend/wasm_threads.js');
  if (wasmThreadsEnabled()) process.exit();
}
