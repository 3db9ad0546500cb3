// ovr/util: every public name of src/util/, by file (the package root, src/index.ts, lists the everyday subset).
export { JsonlLogger, readStepLog, type StepRecord, truncateStepLog } from './log.js';
export {
  formatDuration,
  formatProgress,
  ProgressBar,
  type ProgressInfo,
  type ProgressStream,
} from './progress.js';
export { Rng, type RngState } from './rng.js';
