// Inverted dropout with a counter-based hash: element (row, rest) of a [rows, width] view is
// kept when hash(seed, globalRow[row] * stride + (stride - width) + rest) >= threshold, and
// scaled by 1 / (1 - p). stride >= width is the row width of the longest batch: a row trimmed
// from the left (right-aligned sequences with less padding) keeps every element's mask.
// The mask is a pure function of the seed and the element's place in the GLOBAL batch
// (globalRow maps local rows to rows of the global batch), so it is the same whatever the
// number of data-parallel shards, and the backward pass recomputes it instead of storing it.
// dropout4 does four adjacent elements of a row per invocation (vec4 loads, four hashes in
// vector lanes) when width and stride are multiples of 4: the same masks and values.

struct Params { n: u32, width: u32, stride: u32, seed: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> globalRow: array<u32>;

override WG: u32 = 64u;

// PCG-style integer hash (Jarzynski and Olano, "Hash Functions for GPU Rendering", 2020).
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn pcg4(v: vec4u) -> vec4u {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> vec4u(28u)) + 4u)) ^ state) * 277803737u;
  return (word >> vec4u(22u)) ^ word;
}

// The hash input of element i of the [rows, width] view.
fn elementId(i: u32) -> u32 {
  let row = i / p.width;
  return globalRow[row] * p.stride + (p.stride - p.width) + (i - row * p.width);
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn dropout(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let keep = pcg(pcg(elementId(i)) ^ p.seed) >= p.threshold;
  y[i] = select(0.0, x[i] * p.scale, keep);
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(WG)
fn dropout4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let q = gid.x + gid.y * nwg.x * WG;
  if (q >= p.n / 4u) { return; }
  let ids = vec4u(elementId(4u * q)) + vec4u(0u, 1u, 2u, 3u);
  let keep = pcg4(pcg4(ids) ^ vec4u(p.seed)) >= vec4u(p.threshold);
  y4[q] = select(vec4f(0.0), x4[q] * p.scale, keep);
}
