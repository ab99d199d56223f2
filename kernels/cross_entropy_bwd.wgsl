// Backward of the mean cross-entropy (kernels/cross_entropy.wgsl):
//   dlogits[r, j] = (exp(logits[r, j] - lse[r]) - [j == target[r]]) * g / count
// for rows that count, 0 for ignored rows. g (the loss cotangent) and count (rows that
// count, 0 allowed) are read on the GPU. One workgroup per row, lanes over columns strided
// by WG (contiguous across lanes, no per-element division); ce_backward4 works on vec4
// columns when the row stride is a multiple of 4. Padding columns V .. stride - 1 get 0.

struct Params { N: u32, V: u32, ignoreIndex: i32, stride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> rowLse: array<f32>;
@group(0) @binding(4) var<storage, read> count: array<f32>;
@group(0) @binding(5) var<storage, read> gout: array<f32>;

override WG: u32 = 64u;

// The row's target, or -1 when the row is ignored.
fn rowTarget(row: u32) -> i32 {
  let t = targets[row];
  if (t != p.ignoreIndex && t >= 0 && u32(t) < p.V) { return t; }
  return -1;
}

@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(WG)
fn ce_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; }
  let base = row * p.stride;
  let t = rowTarget(row);
  if (t < 0) {
    for (var j = lane; j < p.stride; j += WG) { dlogits[base + j] = 0.0; }
    return;
  }
  let scale = gout[0] / max(count[0], 1.0);
  let lse = rowLse[row];
  for (var j = lane; j < p.V; j += WG) {
    let prob = exp(logits[base + j] - lse);
    dlogits[base + j] = select(prob, prob - 1.0, j == u32(t)) * scale;
  }
  for (var j = p.V + lane; j < p.stride; j += WG) { dlogits[base + j] = 0.0; }
}

@group(0) @binding(1) var<storage, read> logits4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dlogits4: array<vec4f>;

@compute @workgroup_size(WG)
fn ce_backward4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; }
  let S4 = p.stride / 4u;
  let base = row * S4;
  let t = rowTarget(row);
  if (t < 0) {
    for (var j = lane; j < S4; j += WG) { dlogits4[base + j] = vec4f(0.0); }
    return;
  }
  let scale = gout[0] / max(count[0], 1.0);
  let lse = rowLse[row];
  let onehot = vec4u(u32(t)) - vec4u(0u, 1u, 2u, 3u);
  let V4 = p.V / 4u;
  for (var j = lane; j < V4; j += WG) {
    let prob = exp(logits4[base + j] - lse);
    dlogits4[base + j] = (prob - select(vec4f(0.0), vec4f(1.0), onehot == vec4u(4u * j))) * scale;
  }
  // The vec4 holding the last columns and padding, then whole padding vec4s: 0 past V.
  for (var j = V4 + lane; j < S4; j += WG) {
    let inside = vec4u(4u * j) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.V);
    let prob = exp(logits4[base + j] - lse);
    let d = (prob - select(vec4f(0.0), vec4f(1.0), onehot == vec4u(4u * j))) * scale;
    dlogits4[base + j] = select(vec4f(0.0), d, inside);
  }
}
