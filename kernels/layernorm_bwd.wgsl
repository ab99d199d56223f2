// Backward of kernels/layernorm.wgsl, with xhat = (x - mean) * rstd and dxhat = g * gamma:
//   dx[r, d]  = rstd[r] * (dxhat[r, d] - mean_d(dxhat[r]) - xhat[r, d] * mean_d(dxhat[r] * xhat[r]))
//   dgamma[d] = sum_r g[r, d] * xhat[r, d],   dbeta[d] = sum_r g[r, d]
// layernorm_dx: one invocation per row. layernorm_dparams: one invocation per column, rows
// added in order (fixed order: deterministic), loads contiguous across lanes. The *4 entries
// work on vec4 columns when D % 4 == 0.

struct Params { rows: u32, D: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;

override WG: u32 = 64u;

fn index1d(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn hsum(v: vec4f) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_dx(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = index1d(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.D;
  let mu = mean[r];
  let rs = rstd[r];
  var sumG = 0.0;
  var sumGX = 0.0;
  for (var d = 0u; d < p.D; d++) {
    let dxhat = g[base + d] * gamma[d];
    sumG += dxhat;
    sumGX = fma(dxhat, (x[base + d] - mu) * rs, sumGX);
  }
  let a = sumG / f32(p.D);
  let b = sumGX / f32(p.D);
  for (var d = 0u; d < p.D; d++) {
    let xhat = (x[base + d] - mu) * rs;
    dx[base + d] = rs * (g[base + d] * gamma[d] - a - xhat * b);
  }
}

@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_dparams(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let d = index1d(gid, nwg);
  if (d >= p.D) { return; }
  var accGamma = 0.0;
  var accBeta = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let gv = g[r * p.D + d];
    accGamma = fma(gv, (x[r * p.D + d] - mean[r]) * rstd[r], accGamma);
    accBeta += gv;
  }
  dgamma[d] = accGamma;
  dbeta[d] = accBeta;
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> g4: array<vec4f>;
@group(0) @binding(5) var<storage, read> gamma4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dx4: array<vec4f>;

@compute @workgroup_size(WG)
fn layernorm_dx4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = index1d(gid, nwg);
  if (r >= p.rows) { return; }
  let D4 = p.D / 4u;
  let base = r * D4;
  let mu = mean[r];
  let rs = rstd[r];
  var sumG = vec4f(0.0);
  var sumGX = vec4f(0.0);
  for (var d = 0u; d < D4; d++) {
    let dxhat = g4[base + d] * gamma4[d];
    sumG += dxhat;
    sumGX = fma(dxhat, (x4[base + d] - mu) * rs, sumGX);
  }
  let a = hsum(sumG) / f32(p.D);
  let b = hsum(sumGX) / f32(p.D);
  for (var d = 0u; d < D4; d++) {
    let xhat = (x4[base + d] - mu) * rs;
    dx4[base + d] = rs * (g4[base + d] * gamma4[d] - a - xhat * b);
  }
}

@group(0) @binding(5) var<storage, read_write> dgamma4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dbeta4: array<vec4f>;

@compute @workgroup_size(WG)
fn layernorm_dparams4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let d = index1d(gid, nwg);
  let D4 = p.D / 4u;
  if (d >= D4) { return; }
  var accGamma = vec4f(0.0);
  var accBeta = vec4f(0.0);
  for (var r = 0u; r < p.rows; r++) {
    let gv = g4[r * D4 + d];
    accGamma = fma(gv, (x4[r * D4 + d] - mean[r]) * rstd[r], accGamma);
    accBeta += gv;
  }
  dgamma4[d] = accGamma;
  dbeta4[d] = accBeta;
}
