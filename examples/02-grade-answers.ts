// 02 — Grade answers: extraction, the math verifier, the ORZ reward, the demo reward and behaviour tags.
// Run: npx tsx examples/02-grade-answers.ts   (fast; OVR_EXAMPLE_QUICK changes nothing here)
import { detectBehaviors } from '../src/analysis/index.js';
import { extractAnswer, gradeDemo, mathReward, verify } from '../src/index.js';

// 1. Pull the final answer out of a completion: the last \boxed{}, else an "answer is" phrase, else the last number.
console.log(extractAnswer('... so the total is \\boxed{\\frac{3}{4}}.')); // { kind: 'boxed', text: '\\frac{3}{4}', ... }

// 2. verify(gold, prediction): mathematical equivalence, not string equality.
for (const [gold, pred] of [
  ['\\frac{1}{2}', 'The answer is \\boxed{0.5}'],
  ['(1, 2)', '\\boxed{(1,2)}'],
  ['x^2+2x+1', '\\boxed{(x+1)^2}'],
  ['3', '\\boxed{4}'],
]) {
  const v = verify(gold, pred);
  console.log(`${gold.padEnd(12)} vs ${pred.padEnd(28)} -> ${v.equal ? 'correct' : 'wrong'} (${v.reason})`);
}

// 3. Multiple choice: give the option letters.
console.log(verify('C', 'So the answer is \\boxed{C}', { choices: ['A', 'B', 'C', 'D'] }).equal); // true

// 4. The RL reward in ORZ format: <think>...</think> <answer>...</answer>; a truncated completion scores 0.
const orz = '<think> 2 + 2 = 4. Wait, let me re-check: yes, 4. </think> <answer> \\boxed{4} </answer>';
console.log('ORZ reward:', await mathReward({ completion: orz, gold: '4' }));
console.log(
  'ORZ reward, truncated:',
  await mathReward({ completion: orz, gold: '4', finishReason: 'length' }),
);

// 5. The demo task's reward (short words/integers in \boxed{}).
console.log('demo reward:', gradeDemo('<answer> \\boxed{circle} </answer>', 'circle'));

// 6. Cognitive behaviours the paper tracks (see docs/behaviors.md for every pattern).
console.log(
  detectBehaviors('First, count the circles: 3. Wait, that is wrong. Let me look at the image again: 4.'),
);
