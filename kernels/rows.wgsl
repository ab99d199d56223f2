// Copies a block of `rows` rows of width `cols` from src (starting at row srcOffset) to dst
// (starting at row dstOffset), optionally adding into dst: slicing and stitching of row
// ranges, e.g. chunks of a sequence batch for the chunked vocabulary head.

struct Params { rows: u32, cols: u32, srcOffset: u32, dstOffset: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn copy_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let c = i % p.cols;
  let at_src = (p.srcOffset + r) * p.cols + c;
  let at_dst = (p.dstOffset + r) * p.cols + c;
  if (p.accumulate != 0u) { dst[at_dst] += src[at_src]; } else { dst[at_dst] = src[at_src]; }
}
