// Elementwise kernels: fill, scaled sums, products, row-broadcast bias and column sums.
// One element per invocation; a 1-D grid folds into y past 65535 workgroups.

override WG: u32 = 64u;

struct P1 { n: u32, alpha: f32, beta: f32, cols: u32 }
@group(0) @binding(0) var<uniform> p: P1;

@group(0) @binding(1) var<storage, read_write> fill_out: array<f32>;

fn linear(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// out[i] = alpha
@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i < p.n) { fill_out[i] = p.alpha; }
}

@group(0) @binding(1) var<storage, read> ea: array<f32>;
@group(0) @binding(2) var<storage, read> eb: array<f32>;
@group(0) @binding(3) var<storage, read_write> eout: array<f32>;

// out = alpha * a + beta * b
@compute @workgroup_size(WG)
fn axpby(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i < p.n) { eout[i] = p.alpha * ea[i] + p.beta * eb[i]; }
}

// out = alpha * a * b
@compute @workgroup_size(WG)
fn mul(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i < p.n) { eout[i] = p.alpha * ea[i] * eb[i]; }
}

// out[r, c] = a[r, c] + b[c]   (b broadcast over rows of width `cols`)
@compute @workgroup_size(WG)
fn add_row_vector(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i < p.n) { eout[i] = p.alpha * ea[i] + p.beta * eb[i % p.cols]; }
}

@group(0) @binding(1) var<storage, read> ux: array<f32>;
@group(0) @binding(2) var<storage, read_write> uy: array<f32>;

// y = alpha * x + beta * y   (in place: gradient accumulation)
@compute @workgroup_size(WG)
fn axpy_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i < p.n) { uy[i] = p.alpha * ux[i] + p.beta * uy[i]; }
}

// y = alpha * x
@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i < p.n) { uy[i] = p.alpha * ux[i]; }
}

// y[c] = alpha * sum_r x[r, c]: n = rows, cols = width. Each invocation owns one column and
// adds the rows in order, so the result does not depend on scheduling.
@compute @workgroup_size(WG)
fn sum_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = linear(gid, nwg);
  if (c >= p.cols) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.n; r++) { acc += ux[r * p.cols + c]; }
  uy[c] = p.alpha * acc;
}
