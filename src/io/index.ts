// ovr/io: every public name of src/io/, by file (the package root, src/index.ts, lists the everyday subset).
export {
  disposeWeights,
  type LoadWeightsOptions,
  type LoadWeightsProgress,
  planLoad,
  readWeights,
  type SaveWeightsOptions,
  toLegacyName,
  type WeightLayout,
  type Weights,
  writeWeights,
} from './checkpoint.js';
// safetensors.ts is the file format's public face; the format module adds its low-level helpers here
export * from './safetensors.js';
export { BYTES, CHUNK, numel, widen16InPlace } from './safetensors_format.js';
