// safetensors read/write (single file or HF-sharded), host-side only: no tfjs here. Public entry point; the code is
// split by concern:
//   safetensors_format.ts  shared types, header validation (parseHeader), F16/BF16 <-> F32 conversions
//   safetensors_read.ts    SafetensorsFile (lazy, per-tensor reads), SafetensorsCheckpoint (sharded), readSafetensors
//   safetensors_write.ts   buildHeader, writeSafetensors(From), planShards/shardName, writeSafetensorsDir
// Spec: ../shared/spec/qwen2_5_vl.md §6.2.
export {
  f32ToBf16Bits,
  type HostTensor,
  INDEX_FILE,
  MAX_HEADER_BYTES,
  parseHeader,
  type StDtype,
  type TensorInfo,
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
