// The eight cognitive behaviours of the OVR behaviour analysis (arXiv 2507.05255 §5.2, Table 1, App. C) and the
// per-behaviour counting prompt sent to an LLM judge. OVR used GPT-4o with one prompt per behaviour that returns a
// count in `<count>X</count>` (App. C.2; Fig. 7 shows the backtracking prompt), following Gandhi et al. 2025
// ("Cognitive behaviors that enable self-improving reasoners"). The paper prints only the backtracking prompt, so the
// wording below is ours, built to the same structure: the trace, one behaviour's definition with examples, and the
// instruction to count distinct instances and answer in <count></count>. Changing a prompt changes every cache key
// (judge.ts hashes the full request), so old verdicts are never reused for a new prompt.

/** Linguistic behaviours (Gandhi et al.) and their visual counterparts (OVR Table 1), in pair order. */
export const JUDGE_BEHAVIORS = [
  'backtracking',
  'subgoal',
  'verification',
  'backwardChaining',
  'visualReflection',
  'visualDivideConquer',
  'visualVerification',
  'goalDrivenTracing',
] as const;
export type JudgeBehavior = (typeof JUDGE_BEHAVIORS)[number];

/** A visual behaviour, its linguistic counterpart, and the row label of the transfer table (OVR Fig. 5b). */
export interface BehaviorPair {
  label: string;
  visual: JudgeBehavior;
  linguistic: JudgeBehavior;
}

/** OVR Table 1: visual reflection <-> backtracking, divide-and-conquer <-> subgoal setting, visual verification <->
 * verification, goal-driven visual tracing <-> backward chaining. */
export const BEHAVIOR_PAIRS: readonly BehaviorPair[] = [
  { label: 'backtracking', visual: 'visualReflection', linguistic: 'backtracking' },
  { label: 'subgoal', visual: 'visualDivideConquer', linguistic: 'subgoal' },
  { label: 'verification', visual: 'visualVerification', linguistic: 'verification' },
  { label: 'backward', visual: 'goalDrivenTracing', linguistic: 'backwardChaining' },
];

type Definition = { name: string; what: string; examples: string[] };

/** What each behaviour is, in the words the judge sees. */
export const BEHAVIOR_DEFINITIONS: Readonly<Record<JudgeBehavior, Definition>> = {
  backtracking: {
    name: 'backtracking',
    what: 'the model realises a path or step is wrong or unpromising and explicitly abandons it to try another',
    examples: [
      '"Wait, that approach gives a negative length; let me try a different method."',
      '"This is wrong. Let me go back to the second equation."',
    ],
  },
  subgoal: {
    name: 'subgoal setting',
    what: 'the model breaks the problem into smaller intermediate goals and states them before working on them',
    examples: [
      '"First I need the radius, then the area, then the ratio."',
      '"To solve this, let\'s find x first, and then use it to find y."',
    ],
  },
  verification: {
    name: 'verification',
    what: 'the model checks an intermediate or final result, e.g. by substituting it back or recomputing it another way',
    examples: [
      '"Let me verify: 3 * 4 = 12, which matches."',
      '"Plugging x = 2 back into the equation gives 7 = 7, correct."',
    ],
  },
  backwardChaining: {
    name: 'backward chaining',
    what: 'the model starts from the goal or the required answer and works backwards to what is needed to reach it',
    examples: [
      '"For the total to be 24, the missing term must be 24 - 15 = 9."',
      '"We need angle C; to get it we need angles A and B."',
    ],
  },
  visualReflection: {
    name: 'visual reflection',
    what: 'the model goes back to the image to re-inspect it, typically after doubting an earlier reading of it',
    examples: [
      '"Let me see the image again: the bar for 2019 is actually taller."',
      '"Looking back at the figure, the angle is marked 40 degrees, not 50."',
    ],
  },
  visualDivideConquer: {
    name: 'visual divide-and-conquer',
    what: 'the model splits the image into regions, parts or objects and analyses them one at a time',
    examples: [
      '"First look at the left half of the chart, then the right half."',
      '"Count the circles in the top row, then the bottom row."',
    ],
  },
  visualVerification: {
    name: 'visual verification',
    what: 'the model checks an intermediate or final result against what the image shows',
    examples: [
      '"This matches the figure: there are indeed 5 triangles."',
      '"Checking with the diagram, side AB is the longest, consistent with my answer."',
    ],
  },
  goalDrivenTracing: {
    name: 'goal-driven visual tracing',
    what: 'the model starts from what the question asks for and searches or traces the image for the elements needed to reach it',
    examples: [
      '"We need the value for March, so find March on the x-axis and trace up to the line."',
      '"To find the shortest path, start at the exit and trace back through the maze."',
    ],
  },
};

/** An OpenAI chat message. */
export type ChatMessage = { role: 'system' | 'user' | 'assistant'; content: string };

/**
 * The counting prompt for one behaviour and one reasoning trace (one user message).
 * @example judgeMessages('backtracking', 'Wait, that is wrong...')[0].content // '... <count> ...'
 */
export function judgeMessages(behavior: JudgeBehavior, trace: string, question?: string): ChatMessage[] {
  const d = BEHAVIOR_DEFINITIONS[behavior];
  if (!d) throw new Error(`unknown behaviour '${behavior}': use one of ${JUDGE_BEHAVIORS.join(', ')}`);
  const q = question ? `The problem was:\n${question}\n\n` : '';
  const content =
    `Below is a chain of reasoning that a model produced while solving a problem.\n\n${q}` +
    `The reasoning is:\n<reasoning>\n${trace}\n</reasoning>\n\n` +
    `Evaluate whether the reasoning shows ${d.name}: ${d.what}. Examples of ${d.name}:\n` +
    `${d.examples.map((e) => `- ${e}`).join('\n')}\n\n` +
    `Count the number of distinct instances of ${d.name} in the reasoning. Give the count as a whole number between ` +
    'the tags <count> and </count>, e.g. <count>2</count>. If there are none, answer <count>0</count>.';
  return [{ role: 'user', content }];
}

/**
 * The count in a judge reply: the last `<count>N</count>` with a non-negative integer N; undefined when absent or
 * not an integer (a malformed reply).
 * @example parseCount('Two instances. <count>2</count>') // 2
 */
export function parseCount(reply: string): number | undefined {
  const all = [...reply.matchAll(/<count>\s*([^<]*?)\s*<\/count>/gi)];
  if (!all.length) return undefined;
  const s = all[all.length - 1][1];
  return /^\d+$/.test(s) ? Number(s) : undefined;
}
