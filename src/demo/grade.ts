// Grading demo answers: the verifiable reward of the demo's RL stage. The answer is the reward's `lastBoxed`
// (src/reward/extract.ts), compared after a light normalisation; truncated completions score 0 (ORZ).
import { findBoxes } from '../reward/extract.js';
import type { RewardFunction } from '../train/rollout.js';

/** Lowercase, trim, drop `\text{}` and a trailing period. */
export function normalizeAnswer(s: string): string {
  return s
    .replace(/\\text\{([^{}]*)\}/g, '$1')
    .trim()
    .replace(/\.$/, '')
    .trim()
    .toLowerCase();
}

/**
 * Verifiable reward for a demo problem: 1 if the last \boxed{} equals the gold answer, else 0.
 * @example
 * gradeDemo('<answer> \\boxed{3} </answer>', '3') // 1
 */
export function gradeDemo(completion: string, answer: string): number {
  const got = findBoxes(completion).at(-1)?.content; // the last box alone: 'wait' self-corrections count
  return got !== undefined && normalizeAnswer(got) === normalizeAnswer(answer) ? 1 : 0;
}

/**
 * The demo's verifiable reward for trainGrpo: gradeDemo against the row's answer, 0 for truncated completions.
 * @example demoReward(['<answer> \\boxed{red} </answer>'], { answers: ['red'], finishReasons: ['stop'], ... }) // [1]
 */
export const demoReward: RewardFunction = (completions, ctx) =>
  completions.map((c, i) => (ctx.finishReasons[i] === 'length' ? 0 : gradeDemo(c, ctx.answers[i] ?? '')));
