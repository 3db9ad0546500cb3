// `ovr-train serve --model DIR [--adapter DIR] --port P [--host 127.0.0.1]`: serves a model over the SGLang-style
// /generate and the vLLM/OpenAI-style /v1/completions + /v1/chat/completions subset (src/serve/server.ts), with
// weight reloads from disk. Prints one line `ovr-train serve: listening on <url>` once ready; stops on SIGINT/SIGTERM.
import path from 'node:path';
import { z } from 'zod';
import { loadModel } from '../model/load.js';
import { detachAdapter } from '../model/lora.js';
import { swapAdapter } from '../model/peft.js';
import { startServer } from '../serve/server.js';
import { BACKENDS } from '../train/config.js';
import { startCommand } from './common.js';
import { pickTokenizer } from './generate.js';

/** Flags of `ovr-train serve`. */
export const ServeArgs = z
  .object({
    model: z
      .string()
      .min(1)
      .describe(
        "Model directory (config.json + safetensors, e.g. a checkpoint dir), a config.json, or 'tiny' (random)",
      ),
    adapter: z
      .string()
      .min(1)
      .optional()
      .describe(
        'PEFT adapter folder to attach on start; requests get it by naming it (SGLang lora_path, vLLM model)',
      ),
    adapterName: z
      .string()
      .min(1)
      .optional()
      .describe('Name of the --adapter in /v1/models and requests (default: its folder name)'),
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(30000)
      .describe('Port to listen on (0 = any free port; the ready line prints it)'),
    host: z
      .string()
      .default('127.0.0.1')
      .describe(
        'Address to bind; the server has no authentication, so keep it on loopback or a private network',
      ),
    servedModelName: z
      .string()
      .min(1)
      .optional()
      .describe('Model name in /v1/models and replies (default: the folder name)'),
    tokenizer: z
      .string()
      .optional()
      .describe('Folder with tokenizer.json (default: the model folder, else the bundled Qwen2.5 one)'),
    seed: z.number().int().min(0).default(0).describe("Init seed when --model is 'tiny' or a config.json"),
    backend: z.enum(BACKENDS).default('auto').describe("tfjs backend ('auto' honours OVR_BACKEND)"),
    quiet: z.boolean().default(false).describe('Do not log one line per request to stderr'),
  })
  .strict();
export type ServeArgs = z.output<typeof ServeArgs>;

const SUMMARY =
  'Serve a model for rollouts: SGLang-style /generate + /update_weights_from_disk and vLLM/OpenAI-style\n' +
  '/v1/completions + /v1/chat/completions, /health, /v1/models (docs/scaling.md).\n' +
  'Example: ovr-train serve --model runs/sft/checkpoint-00000100 --port 30000\n' +
  'One LoRA adapter at a time (--adapter, /load_lora_adapter replaces it); requests name it to use it.';

/**
 * CLI entry: runs until SIGINT/SIGTERM; returns the exit code.
 * @example await serveCommand(['--model', 'tiny', '--port', '0']);
 */
export async function serveCommand(argv: string[]): Promise<number> {
  const p = await startCommand(ServeArgs, argv, 'ovr-train serve', SUMMARY, (c) => c.backend);
  if ('exit' in p) return p.exit;
  const a = p.config as ServeArgs;
  const [model, tokenizer] = await Promise.all([loadModel(a.model, { seed: a.seed }), pickTokenizer(a)]);
  const modelName = a.servedModelName ?? (a.model === 'tiny' ? 'tiny' : path.basename(path.resolve(a.model)));
  let adapter: { name: string; path: string } | undefined;
  if (a.adapter) {
    const dir = path.resolve(a.adapter);
    try {
      await swapAdapter(model, dir);
    } catch (e) {
      console.error(`ovr-train serve: --adapter: ${(e as Error).message}`);
      model.dispose();
      return 2;
    }
    adapter = { name: a.adapterName ?? path.basename(dir), path: dir };
  }
  const server = await startServer(
    {
      model,
      tokenizer,
      modelName,
      modelPath: a.model === 'tiny' ? 'tiny' : path.resolve(a.model),
      adapter,
      log: a.quiet ? undefined : (line) => console.error(`ovr-train serve: ${line}`),
    },
    { port: a.port, host: a.host },
  );
  const also = adapter ? `, adapter ${adapter.name}` : '';
  console.log(
    `ovr-train serve: listening on ${server.url} (model ${modelName}${also}, backend ${p.backend.name})`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  detachAdapter(model.params)?.dispose();
  model.dispose();
  return 0;
}
