// Elementwise kernels: fill, scaled sums, products, row-broadcast bias and column sums.
//
// The *4 entries work on vec4s, PER_LANE of them per invocation at a stride of the whole
// grid (so lanes of a workgroup touch neighbouring vec4s); the scalar entries cover sizes
// that are not multiples of 4 and the tail [offset, n) the vec4 pass leaves. A 1-D grid
// folds into y past 65535 workgroups.

override WG: u32 = 64u;
override PER_LANE: u32 = 4u;

struct P1 { n: u32, alpha: f32, beta: f32, cols: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: P1;

fn linear(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn lanes(nwg: vec3u) -> u32 {
  return nwg.x * nwg.y * WG;
}

@group(0) @binding(1) var<storage, read_write> fill_out: array<f32>;
@group(0) @binding(1) var<storage, read_write> fill_out4: array<vec4<f32>>;

// out[i] = alpha
@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = p.offset + linear(gid, nwg);
  if (i < p.n) { fill_out[i] = p.alpha; }
}

@compute @workgroup_size(WG)
fn fill4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = lanes(nwg);
  for (var j = 0u; j < PER_LANE; j++) {
    let i = linear(gid, nwg) + j * stride;
    if (i < p.n) { fill_out4[i] = vec4<f32>(p.alpha); }
  }
}

@group(0) @binding(1) var<storage, read> ea: array<f32>;
@group(0) @binding(2) var<storage, read> eb: array<f32>;
@group(0) @binding(3) var<storage, read_write> eout: array<f32>;
@group(0) @binding(1) var<storage, read> ea4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> eb4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> eout4: array<vec4<f32>>;

// out = alpha * a + beta * b
@compute @workgroup_size(WG)
fn axpby(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = p.offset + linear(gid, nwg);
  if (i < p.n) { eout[i] = p.alpha * ea[i] + p.beta * eb[i]; }
}

@compute @workgroup_size(WG)
fn axpby4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = lanes(nwg);
  for (var j = 0u; j < PER_LANE; j++) {
    let i = linear(gid, nwg) + j * stride;
    if (i < p.n) { eout4[i] = p.alpha * ea4[i] + p.beta * eb4[i]; }
  }
}

// out = alpha * a * b
@compute @workgroup_size(WG)
fn mul(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = p.offset + linear(gid, nwg);
  if (i < p.n) { eout[i] = p.alpha * ea[i] * eb[i]; }
}

@compute @workgroup_size(WG)
fn mul4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = lanes(nwg);
  for (var j = 0u; j < PER_LANE; j++) {
    let i = linear(gid, nwg) + j * stride;
    if (i < p.n) { eout4[i] = p.alpha * ea4[i] * eb4[i]; }
  }
}

// out[r, c] = alpha * a[r, c] + beta * b[c]   (b broadcast over rows of width `cols`)
@compute @workgroup_size(WG)
fn add_row_vector(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = p.offset + linear(gid, nwg);
  if (i < p.n) { eout[i] = p.alpha * ea[i] + p.beta * eb[i % p.cols]; }
}

// The same on vec4s: `cols` counts vec4s here (the row width is a multiple of 4).
@compute @workgroup_size(WG)
fn add_row_vector4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = lanes(nwg);
  for (var j = 0u; j < PER_LANE; j++) {
    let i = linear(gid, nwg) + j * stride;
    if (i < p.n) { eout4[i] = p.alpha * ea4[i] + p.beta * eb4[i % p.cols]; }
  }
}

@group(0) @binding(1) var<storage, read> ux: array<f32>;
@group(0) @binding(2) var<storage, read_write> uy: array<f32>;
@group(0) @binding(1) var<storage, read> ux4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> uy4: array<vec4<f32>>;

// y = alpha * x + beta * y   (in place: gradient accumulation)
@compute @workgroup_size(WG)
fn axpy_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = p.offset + linear(gid, nwg);
  if (i < p.n) { uy[i] = p.alpha * ux[i] + p.beta * uy[i]; }
}

@compute @workgroup_size(WG)
fn axpy_inplace4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = lanes(nwg);
  for (var j = 0u; j < PER_LANE; j++) {
    let i = linear(gid, nwg) + j * stride;
    if (i < p.n) { uy4[i] = p.alpha * ux4[i] + p.beta * uy4[i]; }
  }
}

// y = alpha * x
@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = p.offset + linear(gid, nwg);
  if (i < p.n) { uy[i] = p.alpha * ux[i]; }
}

@compute @workgroup_size(WG)
fn scale4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = lanes(nwg);
  for (var j = 0u; j < PER_LANE; j++) {
    let i = linear(gid, nwg) + j * stride;
    if (i < p.n) { uy4[i] = p.alpha * ux4[i]; }
  }
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

// The same with one vec4 of columns per invocation (`cols` counts vec4s).
@compute @workgroup_size(WG)
fn sum_rows4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = linear(gid, nwg);
  if (c >= p.cols) { return; }
  var acc = vec4<f32>();
  for (var r = 0u; r < p.n; r++) { acc += ux4[r * p.cols + c]; }
  uy4[c] = p.alpha * acc;
}

// First stage of column sums over many rows: invocation (c, s) adds rows [s * offset,
// (s + 1) * offset) of vec4 column c in order into y[s, c]. Invocations run through the
// columns of one segment, then the next (a 1-D grid of cols x segments, all lanes busy), so
// long inputs spread over many invocations; sum_rows4 then adds the segments.
@compute @workgroup_size(WG)
fn sum_rows_segments4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  let segments = (p.n + p.offset - 1u) / p.offset;
  if (i >= p.cols * segments) { return; }
  let s = i / p.cols;
  let c = i - s * p.cols;
  let start = s * p.offset;
  let end = min(p.n, start + p.offset);
  var acc = vec4<f32>();
  for (var r = start; r < end; r++) { acc += ux4[r * p.cols + c]; }
  uy4[i] = acc;
}
