// Row-wise L2 normalization of x [rows, E]: y = x / n, n = sqrt(sum x^2 + eps) (smooth at 0).
// Rows are written from rowOffset on, so several inputs can fill one output (two views
// stacked for a contrastive loss). Backward, with y = x / n:
//   dx = (g - y * dot(y, g)) / n
// One invocation per row, looping over E.
// The columns variants normalize each column of x [rows, E] instead (a head's token vectors
// stored as columns): one invocation per column, looping over the rows, lanes on adjacent
// columns (contiguous loads); the same sums in the same order as the rows of the transpose.

struct Params { rows: u32, E: u32, rowOffset: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;

@compute @workgroup_size(WG)
fn l2norm_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let src = r * p.E;
  var ss = 0.0;
  for (var d = 0u; d < p.E; d++) {
    let v = x[src + d];
    ss = fma(v, v, ss);
  }
  let n = sqrt(ss + p.eps);
  let dst = (p.rowOffset + r) * p.E;
  for (var d = 0u; d < p.E; d++) { y[dst + d] = x[src + d] / n; }
  norm[p.rowOffset + r] = n;
}

@group(0) @binding(2) var<storage, read> savedNorm: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn l2norm_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let src = r * p.E;
  let gsrc = (p.rowOffset + r) * p.E;
  let n = savedNorm[p.rowOffset + r];
  var yg = 0.0;
  for (var d = 0u; d < p.E; d++) { yg = fma(x[src + d] / n, g[gsrc + d], yg); }
  for (var d = 0u; d < p.E; d++) {
    dx[src + d] = (g[gsrc + d] - (x[src + d] / n) * yg) / n;
  }
}

@compute @workgroup_size(WG)
fn l2norm_columns_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= p.E) { return; }
  var ss = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let v = x[r * p.E + c];
    ss = fma(v, v, ss);
  }
  let n = sqrt(ss + p.eps);
  for (var r = 0u; r < p.rows; r++) { y[r * p.E + c] = x[r * p.E + c] / n; }
  norm[c] = n;
}

@compute @workgroup_size(WG)
fn l2norm_columns_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= p.E) { return; }
  let n = savedNorm[c];
  var yg = 0.0;
  for (var r = 0u; r < p.rows; r++) { yg = fma(x[r * p.E + c] / n, g[r * p.E + c], yg); }
  for (var r = 0u; r < p.rows; r++) {
    let i = r * p.E + c;
    dx[i] = (g[i] - (x[i] / n) * yg) / n;
  }
}
