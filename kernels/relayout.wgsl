// dst[b, i, j] = op(src[b])[i, j] inside the logical rows x cols, 0 in the padding, where
// src[b] is stored srcRows x srcCols and op transposes it when `transpose` is set. One
// kernel for transposes, zero-padding to vector widths, and cropping padding away again.

struct Params {
  batch: u32,
  srcRows: u32, srcCols: u32,
  rows: u32, cols: u32,
  dstRows: u32, dstCols: u32,
  transpose: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 64u;

// Lanes walk a contiguous destination row (j); y strides over rows so they may pass 65535.
@compute @workgroup_size(WG)
fn relayout(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x;
  let b = gid.z;
  if (j >= p.dstCols) { return; }
  let srcBase = b * p.srcRows * p.srcCols;
  let dstBase = b * p.dstRows * p.dstCols;
  for (var i = gid.y; i < p.dstRows; i += nwg.y) {
    var v = 0.0;
    if (i < p.rows && j < p.cols) {
      if (p.transpose != 0u) { v = src[srcBase + j * p.srcCols + i]; } else { v = src[srcBase + i * p.srcCols + j]; }
    }
    dst[dstBase + i * p.dstCols + j] = v;
  }
}
