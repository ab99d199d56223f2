// Layer normalization over the last dimension of a [rows, D] view:
//   y[r, d] = (x[r, d] - mean[r]) * rstd[r] * gamma[d] + beta[d],  rstd = 1 / sqrt(var + eps).
// One invocation per row loops over D (mean first, then the centred variance, so a large
// offset does not cancel precision away); mean and rstd are saved for the backward pass.
// layernorm_forward4 is the same over vec4 columns when D % 4 == 0.

struct Params { rows: u32, D: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

override WG: u32 = 64u;

fn rowIndex(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn hsum(v: vec4f) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowIndex(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.D;
  var sum = 0.0;
  for (var d = 0u; d < p.D; d++) { sum += x[base + d]; }
  let mu = sum / f32(p.D);
  var sq = 0.0;
  for (var d = 0u; d < p.D; d++) {
    let c = x[base + d] - mu;
    sq = fma(c, c, sq);
  }
  let rs = 1.0 / sqrt(sq / f32(p.D) + p.eps);
  for (var d = 0u; d < p.D; d++) {
    y[base + d] = fma((x[base + d] - mu) * rs, gamma[d], beta[d]);
  }
  mean[r] = mu;
  rstd[r] = rs;
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> gamma4: array<vec4f>;
@group(0) @binding(3) var<storage, read> beta4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(WG)
fn layernorm_forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowIndex(gid, nwg);
  if (r >= p.rows) { return; }
  let D4 = p.D / 4u;
  let base = r * D4;
  var sum = vec4f(0.0);
  for (var d = 0u; d < D4; d++) { sum += x4[base + d]; }
  let mu = hsum(sum) / f32(p.D);
  var sq = vec4f(0.0);
  for (var d = 0u; d < D4; d++) {
    let c = x4[base + d] - mu;
    sq = fma(c, c, sq);
  }
  let rs = 1.0 / sqrt(hsum(sq) / f32(p.D) + p.eps);
  for (var d = 0u; d < D4; d++) {
    y4[base + d] = fma((x4[base + d] - mu) * rs, gamma4[d], beta4[d]);
  }
  mean[r] = mu;
  rstd[r] = rs;
}
