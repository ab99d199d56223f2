// Inverted dropout with a counter-based hash: element (row, rest) of a [rows, width] view is
// kept when hash(seed, globalRow[row] * stride + (stride - width) + rest) >= threshold, and
// scaled by 1 / (1 - p). stride >= width is the row width of the longest batch: a row trimmed
// from the left (right-aligned sequences with less padding) keeps every element's mask.
// The mask is a pure function of the seed and the element's place in the GLOBAL batch
// (globalRow maps local rows to rows of the global batch), so it is the same whatever the
// number of data-parallel shards, and the backward pass recomputes it instead of storing it.

struct Params { n: u32, width: u32, stride: u32, seed: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> globalRow: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

// PCG-style integer hash (Jarzynski and Olano, "Hash Functions for GPU Rendering", 2020).
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(WG)
fn dropout(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let row = i / p.width;
  let id = globalRow[row] * p.stride + (p.stride - p.width) + (i - row * p.width);
  let keep = pcg(pcg(id) ^ p.seed) >= p.threshold;
  y[i] = select(0.0, x[i] * p.scale, keep);
}
