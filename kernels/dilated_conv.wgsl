// Causal dilated 1-D convolution over time, channels last. x is [B, L, Cin].
//   full:      w [K, Cin, Cout], y[b,t,o] = bias[o] + sum_k sum_c w[k,c,o] x[b, t - (K-1-k)*dil, c]
//   depthwise: w [K, C],         y[b,t,c] = bias[c] + sum_k w[k,c] x[b, t - (K-1-k)*dil, c]
// Time steps before 0 are zero (left padding), so y[t] never sees x after t.
//
// A workgroup owns consecutive time steps of one batch row; lanes own output channels.
// Full: each lane keeps TT x TO accumulators for TO channels strided by WG, so a weight row
// w[k,c,:] is read contiguously across lanes and each x value is a uniform load.
// Depthwise: one channel per lane, x read contiguously across lanes, the K taps in registers;
// a workgroup walks TL time steps, since there is little work per step.

struct Params { B: u32, L: u32, Cin: u32, Cout: u32, K: u32, dil: u32, hasBias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Tile sizes: TT time steps per workgroup and TO channels per lane (full), TL time steps per
// workgroup (depthwise). Register arrays are sized by the MAX_ bounds; the loops run to the
// override values, so a pipeline keeps only the registers it uses.
override WG: u32 = 64u;
override TT: u32 = 8u;
override TO: u32 = 4u;
override TL: u32 = 64u;
const MAX_TT: u32 = 16u;
const MAX_TO: u32 = 8u;
const MAX_K: u32 = 7u;

@compute @workgroup_size(WG)
fn conv_full(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let b = wid.z;
  let t0 = wid.y * TT;
  let o0 = wid.x * WG * TO + lane;
  // Channels past Cout read channel Cout-1 (in bounds); their results are not stored.
  var cols: array<u32, MAX_TO>;
  for (var j = 0u; j < TO; j++) { cols[j] = min(o0 + j * WG, p.Cout - 1u); }
  var acc: array<array<f32, MAX_TO>, MAX_TT>;
  let tLast = min(t0 + TT, p.L) - 1u;
  for (var k = 0u; k < p.K; k++) {
    let shift = (p.K - 1u - k) * p.dil;
    if (tLast < shift) { continue; }
    var src: array<u32, MAX_TT>;
    var live: array<bool, MAX_TT>;
    for (var r = 0u; r < TT; r++) {
      let t = min(t0 + r, tLast);
      live[r] = t >= shift;
      src[r] = (b * p.L + select(0u, t - shift, live[r])) * p.Cin;
    }
    let wBase = k * p.Cin * p.Cout;
    for (var c = 0u; c < p.Cin; c++) {
      var wv: array<f32, MAX_TO>;
      for (var j = 0u; j < TO; j++) { wv[j] = w[wBase + c * p.Cout + cols[j]]; }
      for (var r = 0u; r < TT; r++) {
        let xv = select(0.0, x[src[r] + c], live[r]);
        for (var j = 0u; j < TO; j++) { acc[r][j] = fma(xv, wv[j], acc[r][j]); }
      }
    }
  }
  for (var j = 0u; j < TO; j++) {
    let o = o0 + j * WG;
    if (o >= p.Cout) { break; }
    var bo = 0.0;
    if (p.hasBias != 0u) { bo = bias[o]; }
    for (var r = 0u; r < TT; r++) {
      let t = t0 + r;
      if (t >= p.L) { break; }
      y[(b * p.L + t) * p.Cout + o] = acc[r][j] + bo;
    }
  }
}

@compute @workgroup_size(WG)
fn conv_depthwise(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let b = wid.z;
  let t0 = wid.y * TL;
  let c = wid.x * WG + lane;
  if (c >= p.Cin) { return; }
  var wv: array<f32, MAX_K>;
  // Loops over taps run to MAX_K (guarded) so they unroll and wv stays in registers.
  for (var k = 0u; k < MAX_K; k++) { if (k < p.K) { wv[k] = w[k * p.Cin + c]; } }
  var bc = 0.0;
  if (p.hasBias != 0u) { bc = bias[c]; }
  let tEnd = min(t0 + TL, p.L);
  for (var t = t0; t < tEnd; t++) {
    var acc = bc;
    for (var k = 0u; k < MAX_K; k++) {
      if (k >= p.K) { break; }
      let shift = (p.K - 1u - k) * p.dil;
      if (t >= shift) { acc = fma(wv[k], x[(b * p.L + t - shift) * p.Cin + c], acc); }
    }
    y[(b * p.L + t) * p.Cin + c] = acc;
  }
}
