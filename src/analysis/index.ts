// ovr/analysis: every public name of src/analysis/, by file (the package root, src/index.ts, lists the everyday subset).
export {
  BEHAVIOR_PATTERNS,
  BEHAVIORS,
  type Behavior,
  behaviorRates,
  detectBehaviors,
  explainBehaviors,
  type Pattern,
} from './behaviors.js';
