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
export {
  BYTES,
  CHUNK,
  f32ToBf16Bits,
  type HostTensor,
  INDEX_FILE,
  MAX_HEADER_BYTES,
  numel,
  parseHeader,
  type StDtype,
  type TensorInfo,
  widen16InPlace,
} from './safetensors_format.js';
export { readSafetensors, SafetensorsCheckpoint, SafetensorsFile } from './safetensors_read.js';
export {
  buildHeader,
  planShards,
  shardName,
  type TensorSource,
  type WriteOptions,
  writeSafetensors,
  writeSafetensorsDir,
  writeSafetensorsFrom,
} from './safetensors_write.js';
