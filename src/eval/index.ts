// ovr/eval: every public name of src/eval/, by file (the package root, src/index.ts, lists the everyday subset).
export { type EvalFormat, type EvalItem, readEvalItems, toItem } from './data.js';
export {
  type Breakdown,
  type EvalOptions,
  type EvalRecord,
  type EvalSummary,
  gradeCompletion,
  runEval,
  summarizeRecords,
} from './harness.js';
