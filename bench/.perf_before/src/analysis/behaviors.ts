// Cognitive-behaviour detection in completions, following the behaviour taxonomy analysed by Open Vision
// Reasoner (arXiv 2507.05255, after Gandhi et al. 2025 "Cognitive behaviors that enable self-improving
// reasoners"): backtracking, verification, subgoal setting, backward chaining, plus OVR's visual reflection
// (re-inspecting the image). The paper labels behaviours with an LLM judge; we use a transparent lexicon so
// the analysis runs offline and every decision can be traced to one pattern (docs/behaviors.md lists each one
// and why it is there; a test checks that the doc and this table agree).
// Patterns are linear-time: no nested quantifiers, and gaps are bounded ([^.?!\n]{0,60}), so a 1 MB input is
// scanned in milliseconds (tested).

export const BEHAVIORS = [
  'backtracking',
  'verification',
  'subgoal',
  'backwardChaining',
  'visualReflection',
] as const;
export type Behavior = (typeof BEHAVIORS)[number];

export type Pattern = { re: RegExp; why: string };

const IMG = '(?:image|picture|figure|diagram|graph|chart|drawing|plot|photo)';

/** The lexicon: every pattern that can fire a behaviour, with the reason it is there. Case-insensitive. */
export const BEHAVIOR_PATTERNS: Readonly<Record<Behavior, readonly Pattern[]>> = {
  backtracking: [
    { re: /\bwait\b/i, why: 'the canonical "Wait, ..." of R1-style self-correction' },
    {
      re: /\b(?:that|this|it)(?: is| was|'s) (?:not right|wrong|incorrect|a mistake)\b/i,
      why: 'rejects a previous step',
    },
    { re: /\bI (?:made a mistake|was wrong|miscounted|misread|missed)\b/i, why: 'admits an error' },
    {
      re: /\b(?:let me|let's|I'll|I will) (?:try again|start over|reconsider|backtrack|go back)\b/i,
      why: 'abandons the current path',
    },
    { re: /\b(?:on second thought|scratch that)\b/i, why: 'explicit change of mind' },
    { re: /\b(?:try|use) (?:a different|another) (?:approach|method|way)\b/i, why: 'switches strategy' },
  ],
  verification: [
    {
      re: /\b(?:let me|let's|I'll|I will|I should|we should) (?:double[- ]check|check|verify|confirm)\b/i,
      why: 'announces a check',
    },
    { re: /\bto (?:double[- ]check|verify|confirm)\b/i, why: 'purpose clause of a check ("... to verify")' },
    { re: /\bre-?check/i, why: '"recheck", "re-check", "rechecking"' },
    { re: /\bcheck(?:ing)?\s*:/i, why: '"Check: ..." line' },
    { re: /\b(?:verif(?:y|ied|ies|ication)|confirm(?:s|ed)?)\b/i, why: 'any form of verify/confirm' },
    { re: /\b(?:is|are) (?:correct|consistent)\b|,\s*correct\b/i, why: 'states a result checks out' },
    {
      re: /\b(?:plug(?:ging)?|substitut(?:e|ing))\b[^.?!\n]{0,30}\bback\b/i,
      why: 'substitutes the answer back',
    },
  ],
  subgoal: [
    { re: /\b(?:first(?:ly)?|to begin|to start)\s*,/i, why: '"First, ..." opens a plan' },
    { re: /\bfirst,? (?:I|we) (?:need|will|should|must|have)\b/i, why: '"first we need to ..."' },
    { re: /\bstep \d+\b/i, why: 'numbered steps' },
    { re: /\b(?:next|then|finally|second(?:ly)?)\s*,/i, why: 'sequencing words that continue a plan' },
    {
      re: /\b(?:I|we) (?:need|have|want) to (?:find|compute|count|determine|calculate|identify|figure out)\b/i,
      why: 'names an intermediate goal',
    },
    {
      re: /\bbreak (?:it|this|that|(?:the|this) (?:problem|question|task)) (?:down|into)\b/i,
      why: 'decomposes the problem',
    },
    { re: /\bsub-?(?:goal|problem|task)s?\b/i, why: 'names subgoals' },
  ],
  backwardChaining: [
    { re: /\bwork(?:ing|ed)? backwards?\b/i, why: '"working backwards"' },
    { re: /\breason(?:ing)? backwards?\b|\bbackward chaining\b/i, why: 'names the strategy' },
    {
      re: /\bstart(?:ing)? (?:from|with|at) the (?:answer|goal|result|end|target)\b/i,
      why: 'starts at the goal',
    },
    {
      re: /\bto (?:get|reach|obtain|make|end up with)\b[^.?!\n]{0,60}?\b(?:we|I) (?:need|must|would need|have to)\b/i,
      why: '"to get X, we need Y": goal first, then what it requires',
    },
    {
      re: /\bfor (?:the|this) (?:answer|result|sum|total) to be\b/i,
      why: 'reasons from a required result',
    },
  ],
  visualReflection: [
    {
      re: new RegExp(
        `\\b(?:look|looking|looked|glance|check|checking|examine|examining|inspect|inspecting)\\s+(?:back\\s+)?(?:at\\s+)?the\\s+${IMG}\\s+again\\b`,
        'i',
      ),
      why: '"look at the image again": returns to the image',
    },
    {
      re: new RegExp(
        `\\b(?:look|looking|looked|going|go|refer|referring)\\s+back\\s+(?:at|to)\\s+the\\s+${IMG}\\b`,
        'i',
      ),
      why: '"looking back at the figure"',
    },
    {
      re: new RegExp(`\\bre-?(?:examin|inspect|check|visit|observ|view)\\w*\\s+(?:the\\s+)?${IMG}\\b`, 'i'),
      why: '"re-examine the figure", "recheck the image"',
    },
    { re: new RegExp(`\\bcloser look at the\\s+${IMG}\\b`, 'i'), why: '"a closer look at the image"' },
    {
      re: new RegExp(`\\b${IMG}\\s+(?:again|once more)\\b`, 'i'),
      why: '"the image again" in any other phrasing ("from the figure once more")',
    },
  ],
};

/** Apostrophes and dashes normalised, so "let’s" and "re‑check" match the ASCII lexicon. */
function normalize(text: string): string {
  return text.replace(/[\u2018\u2019\u02bc]/g, "'").replace(/[\u2010-\u2013]/g, '-');
}

/**
 * Which behaviours a completion shows (at least one pattern matches).
 * @example
 * detectBehaviors('First, count. Wait, let me look at the image again.')
 * // { backtracking: true, verification: false, subgoal: true, backwardChaining: false, visualReflection: true }
 */
export function detectBehaviors(text: string): Record<Behavior, boolean> {
  if (typeof text !== 'string') throw new Error(`detectBehaviors: expected a string, got ${typeof text}`);
  const t = normalize(text);
  const out = {} as Record<Behavior, boolean>;
  for (const b of BEHAVIORS) out[b] = BEHAVIOR_PATTERNS[b].some((p) => p.re.test(t));
  return out;
}

/** The patterns that fired for each behaviour (their `.source`), for explaining a tag. */
export function explainBehaviors(text: string): Record<Behavior, string[]> {
  const t = normalize(text);
  const out = {} as Record<Behavior, string[]>;
  for (const b of BEHAVIORS)
    out[b] = BEHAVIOR_PATTERNS[b].filter((p) => p.re.test(t)).map((p) => p.re.source);
  return out;
}

/**
 * Fraction of completions showing each behaviour (0 for an empty list).
 * @example
 * behaviorRates(['Wait, no.', 'Done.']).backtracking // 0.5
 */
export function behaviorRates(completions: readonly string[]): Record<Behavior, number> {
  const rates = Object.fromEntries(BEHAVIORS.map((b) => [b, 0])) as Record<Behavior, number>;
  for (const c of completions) {
    const d = detectBehaviors(c);
    for (const b of BEHAVIORS) if (d[b]) rates[b] += 1;
  }
  if (completions.length) for (const b of BEHAVIORS) rates[b] /= completions.length;
  return rates;
}
