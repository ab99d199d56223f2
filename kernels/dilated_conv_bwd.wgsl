// Backward of the causal dilated convolution in dilated_conv.wgsl. g = dL/dy, [B, L, Cout].
//   dx[b,s,c]  = sum_k sum_o w[k,c,o] g[b, s + (K-1-k)*dil, o]   (terms past L are zero)
//   dW[k,c,o]  = sum_b sum_t g[b,t,o] x[b, t - (K-1-k)*dil, c]
// (depthwise: o = c and no sum over o). dBias is a column sum of g, done elsewhere.
//
// Every reduction runs in a fixed order inside one invocation, so results do not depend on
// scheduling. dW is two-stage: stage 1 writes one partial per chunk of rowsPerChunk (b, t)
// rows, then the chunks are added in order (sum_rows in elementwise.wgsl).

struct Params { B: u32, L: u32, Cin: u32, Cout: u32, K: u32, dil: u32, rowsPerChunk: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gy: array<f32>;

// Tile sizes as in dilated_conv.wgsl, plus TC input channels per dW invocation; register
// arrays are sized by the MAX_ bounds.
override WG: u32 = 64u;
override TT: u32 = 8u;
override TO: u32 = 4u;
override TC: u32 = 8u;
override TL: u32 = 64u;
const MAX_TT: u32 = 16u;
const MAX_TO: u32 = 8u;
const MAX_TC: u32 = 8u;
const MAX_K: u32 = 7u;

// ---- dx: the forward's transpose, looking forward in time ----
// Full: wt is the weight laid out [K, Cout, Cin] so lanes (input channels) read it contiguously.
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn conv_full_dx(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let b = wid.z;
  let t0 = wid.y * TT;
  let c0 = wid.x * WG * TO + lane;
  var cols: array<u32, MAX_TO>;
  for (var j = 0u; j < TO; j++) { cols[j] = min(c0 + j * WG, p.Cin - 1u); }
  var acc: array<array<f32, MAX_TO>, MAX_TT>;
  let tLast = min(t0 + TT, p.L) - 1u;
  for (var k = 0u; k < p.K; k++) {
    let shift = (p.K - 1u - k) * p.dil;
    if (t0 + shift >= p.L) { continue; }
    var src: array<u32, MAX_TT>;
    var live: array<bool, MAX_TT>;
    for (var r = 0u; r < TT; r++) {
      let t = min(t0 + r, tLast);
      live[r] = t + shift < p.L;
      src[r] = (b * p.L + select(0u, t + shift, live[r])) * p.Cout;
    }
    let wBase = k * p.Cout * p.Cin;
    for (var o = 0u; o < p.Cout; o++) {
      var wv: array<f32, MAX_TO>;
      for (var j = 0u; j < TO; j++) { wv[j] = wt[wBase + o * p.Cin + cols[j]]; }
      for (var r = 0u; r < TT; r++) {
        let gv = select(0.0, gy[src[r] + o], live[r]);
        for (var j = 0u; j < TO; j++) { acc[r][j] = fma(gv, wv[j], acc[r][j]); }
      }
    }
  }
  for (var j = 0u; j < TO; j++) {
    let c = c0 + j * WG;
    if (c >= p.Cin) { break; }
    for (var r = 0u; r < TT; r++) {
      let t = t0 + r;
      if (t >= p.L) { break; }
      dx[(b * p.L + t) * p.Cin + c] = acc[r][j];
    }
  }
}

// Depthwise: wt is the weight itself, [K, C]; TL time steps per workgroup as in the forward.
@compute @workgroup_size(WG)
fn conv_depthwise_dx(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let b = wid.z;
  let t0 = wid.y * TL;
  let c = wid.x * WG + lane;
  if (c >= p.Cin) { return; }
  var wv: array<f32, MAX_K>;
  for (var k = 0u; k < MAX_K; k++) { if (k < p.K) { wv[k] = wt[k * p.Cin + c]; } }
  let tEnd = min(t0 + TL, p.L);
  for (var t = t0; t < tEnd; t++) {
    var acc = 0.0;
    for (var k = 0u; k < MAX_K; k++) {
      if (k >= p.K) { break; }
      let ts = t + (p.K - 1u - k) * p.dil;
      if (ts < p.L) { acc = fma(wv[k], gy[(b * p.L + ts) * p.Cin + c], acc); }
    }
    dx[(b * p.L + t) * p.Cin + c] = acc;
  }
}

// ---- dW stage 1: partial[chunk] over rows [chunk * rowsPerChunk, +rowsPerChunk) ----
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

// Full: partial is [chunks, K, Cin, Cout]. Lanes own TO output channels (g read contiguously),
// each invocation TC input channels of one tap (x values are uniform loads).
// Workgroups: x over Cout, y over K * ceil(Cin / TC), z over chunks.
@compute @workgroup_size(WG)
fn conv_full_dw(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let cBlocks = (p.Cin + TC - 1u) / TC;
  let k = wid.y / cBlocks;
  let c0 = (wid.y % cBlocks) * TC;
  let chunk = wid.z;
  let shift = (p.K - 1u - k) * p.dil;
  let o0 = wid.x * WG * TO + lane;
  var cols: array<u32, MAX_TO>;
  for (var j = 0u; j < TO; j++) { cols[j] = min(o0 + j * WG, p.Cout - 1u); }
  var chans: array<u32, MAX_TC>;
  for (var i = 0u; i < TC; i++) { chans[i] = min(c0 + i, p.Cin - 1u); }
  var acc: array<array<f32, MAX_TO>, MAX_TC>;
  let r0 = chunk * p.rowsPerChunk;
  let r1 = min(r0 + p.rowsPerChunk, p.B * p.L);
  var t = r0 % p.L;
  for (var r = r0; r < r1; r++) {
    // Rows t < shift read the zero padding; row r - shift stays in the same sequence.
    if (t >= shift) {
      var gv: array<f32, MAX_TO>;
      for (var j = 0u; j < TO; j++) { gv[j] = gy[r * p.Cout + cols[j]]; }
      let xRow = (r - shift) * p.Cin;
      for (var i = 0u; i < TC; i++) {
        let xv = xin[xRow + chans[i]];
        for (var j = 0u; j < TO; j++) { acc[i][j] = fma(xv, gv[j], acc[i][j]); }
      }
    }
    t++;
    if (t == p.L) { t = 0u; }
  }
  let base = (chunk * p.K + k) * p.Cin;
  for (var i = 0u; i < TC; i++) {
    let c = c0 + i;
    if (c >= p.Cin) { break; }
    for (var j = 0u; j < TO; j++) {
      let o = o0 + j * WG;
      if (o < p.Cout) { partial[(base + c) * p.Cout + o] = acc[i][j]; }
    }
  }
}

// Depthwise: partial is [chunks, K, C]; one channel per lane, all taps in registers.
// Workgroups: x over C, z over chunks.
@compute @workgroup_size(WG)
fn conv_depthwise_dw(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let c = wid.x * WG + lane;
  let cc = min(c, p.Cin - 1u);
  let chunk = wid.z;
  var acc: array<f32, MAX_K>;
  let r0 = chunk * p.rowsPerChunk;
  let r1 = min(r0 + p.rowsPerChunk, p.B * p.L);
  var t = r0 % p.L;
  for (var r = r0; r < r1; r++) {
    let gv = gy[r * p.Cin + cc];
    // Runs to MAX_K (guarded) so it unrolls and acc stays in registers.
    for (var k = 0u; k < MAX_K; k++) {
      if (k >= p.K) { break; }
      let shift = (p.K - 1u - k) * p.dil;
      if (t >= shift) { acc[k] = fma(gv, xin[(r - shift) * p.Cin + cc], acc[k]); }
    }
    t++;
    if (t == p.L) { t = 0u; }
  }
  if (c >= p.Cin) { return; }
  for (var k = 0u; k < MAX_K; k++) { if (k < p.K) { partial[(chunk * p.K + k) * p.Cin + c] = acc[k]; } }
}
