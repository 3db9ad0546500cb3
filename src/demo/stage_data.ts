// The demo's stage inputs, written under <out>/data: stage 0 (captions + echo + visual questions), stage 1 (text
// renderings, primed rows and a replay of stage-0 rows), stage 2 (image prompts) and the held-out eval subset.
// docs/demo.md has the measurements behind each mix.
import path from 'node:path';
import type { DemoOptions } from './options.js';
import { mixDemoJsonl, writeDemoJsonl } from './render.js';
import { makeProblems, type Problem } from './tasks.js';

/**
 * Writes every stage's JSONL (and PNG) inputs into `data`; returns the held-out eval problems.
 * @example const evalProblems = await writeStageData(o, path.join(o.out, 'data'));
 */
export async function writeStageData(o: DemoOptions, data: string): Promise<Problem[]> {
  const { tasks, imageSize } = o;
  const sftProblems = makeProblems({
    seed: o.seed,
    split: 'train',
    count: Math.max(64, o.sft.steps * o.sft.batchSize),
    tasks,
  });
  const rlProblems = makeProblems({ seed: o.seed + 1, split: 'train', count: o.rlPool, tasks });
  const captionProblems = makeProblems({
    seed: o.seed + 2,
    split: 'train',
    count: Math.max(64, o.pretrain.steps * o.pretrain.batchSize),
    tasks,
  });
  const evalProblems = makeProblems({ seed: o.seed, split: 'eval', count: o.evalCount, tasks });
  // Stage 0 mix: captions + echo rows (the scene in words -> itself), so the base model reads a scene the same way
  // whether it comes as vision tokens or as words (the bridge the text cold start relies on), + visual questions, so
  // it reads the text that follows an image (with captions alone it learns to ignore it).
  const nEcho = Math.round(captionProblems.length * o.echoFraction);
  const nPresence = Math.round(captionProblems.length * o.presenceFraction);
  await mixDemoJsonl(
    path.join(data, 'pretrain.jsonl'),
    [
      ...(await writeDemoJsonl(path.join(data, 'pretrain_captions.jsonl'), captionProblems, {
        mode: 'caption',
        imageSize,
      })),
      ...(await writeDemoJsonl(path.join(data, 'pretrain_echo.jsonl'), captionProblems.slice(0, nEcho), {
        mode: 'echo',
      })),
      ...(await writeDemoJsonl(
        path.join(data, 'pretrain_presence.jsonl'),
        captionProblems.slice(captionProblems.length - nPresence),
        { mode: 'presence', imageSize },
      )),
    ],
    o.seed,
  );
  // Stage 1 mix: the text renderings (half with the scene in the user turn, half `primed`: the scene given as the
  // reply's opening) + a small replay of stage-0 rows (captions, echo, visual questions; no task question is ever asked
  // about an image, so the reasoning data stay text-only). docs/demo.md has the measurements behind the mix.
  const nPrimed = Math.round(sftProblems.length * o.primedFraction);
  const replay = (seed: number, fraction: number) =>
    makeProblems({ seed, split: 'train', count: Math.round(sftProblems.length * fraction), tasks });
  await mixDemoJsonl(
    path.join(data, 'sft.jsonl'),
    [
      ...(await writeDemoJsonl(path.join(data, 'sft_text.jsonl'), sftProblems.slice(nPrimed), {
        mode: 'text',
      })),
      ...(await writeDemoJsonl(path.join(data, 'sft_primed.jsonl'), sftProblems.slice(0, nPrimed), {
        mode: 'primed',
      })),
      ...(await writeDemoJsonl(
        path.join(data, 'sft_replay_captions.jsonl'),
        replay(o.seed + 3, o.replayFraction),
        {
          mode: 'caption',
          imageSize,
        },
      )),
      ...(await writeDemoJsonl(
        path.join(data, 'sft_replay_echo.jsonl'),
        replay(o.seed + 4, o.replayEchoFraction),
        {
          mode: 'echo',
        },
      )),
      ...(await writeDemoJsonl(
        path.join(data, 'sft_replay_presence.jsonl'),
        replay(o.seed + 5, o.replayPresenceFraction),
        { mode: 'presence', imageSize },
      )),
    ],
    o.seed + 1,
  );
  await writeDemoJsonl(path.join(data, 'rl.jsonl'), rlProblems, { mode: 'image', imageSize });
  await writeDemoJsonl(path.join(data, 'eval_subset.jsonl'), evalProblems.slice(0, o.evalSubset), {
    mode: 'image',
    imageSize,
  });
  return evalProblems;
}
