// Causal multi-head attention, forward, with an online softmax over key tiles.
// Q, K, V, O are [B, L, H * D] (heads side by side in the last dim); element (b, i, h, d)
// sits at (b * L + i) * C + h * D + d. keyMask is [B, L] (nonzero = valid key). LSE is
// [B, H, L]: the natural log-sum-exp of each query row's scaled scores, EMPTY_ROW for a row
// with no valid key (its output is zero).
//
// A workgroup owns WG * RPI consecutive query rows of one (b, h); lane l holds rows
// row0 + r * WG + l (r < RPI) with their queries and output accumulators in private arrays,
// and the key loop stops at the workgroup's last row. Keys come in tiles of BK: every key
// or value element is loaded once per tile and feeds RPI * BK multiply-adds, because on
// CPU adapters each storage load costs far more than the arithmetic it feeds. One max and
// one rescale per row and tile. The head dim and the mask switch are uniforms, not
// override constants, so one compiled pipeline serves every shape.

struct Params { L: u32, C: u32, H: u32, D: u32, rows: u32, hasMask: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> keyMask: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;
@group(0) @binding(6) var<storage, read_write> LSE: array<f32>;

override WG: u32 = 16u;
override RPI: u32 = 4u;
override BK: u32 = 8u;

// Private arrays are sized for the largest settings; loops run to the overrides. With the
// defaults equal to these sizes the compiler unrolls the row and key loops, so the score
// tile lives in registers.
const MAX_D4: u32 = 32u;
const MAX_RPI: u32 = 4u;
const MAX_BK: u32 = 8u;
// Finite stand-ins for -inf: WGSL may assume arithmetic never meets infinities.
const NEG: f32 = -3.0e38;
const EMPTY_ROW: f32 = -3.0e38;

fn keyValid(b: u32, j: u32) -> bool {
  return p.hasMask == 0u || keyMask[b * p.L + j] != 0u;
}

// Four consecutive elements of a head row; those past D read as zero, so the last
// chunk of an odd head width never reaches into the next head.
fn loadQ4(base: u32, c: u32) -> vec4f {
  let d = 4u * c;
  if (d + 4u <= p.D) { return vec4f(Q[base + d], Q[base + d + 1u], Q[base + d + 2u], Q[base + d + 3u]); }
  var r = vec4f(0.0);
  for (var e = 0u; d + e < p.D; e++) { r[e] = Q[base + d + e]; }
  return r;
}
fn loadK4(base: u32, c: u32) -> vec4f {
  let d = 4u * c;
  if (d + 4u <= p.D) { return vec4f(K[base + d], K[base + d + 1u], K[base + d + 2u], K[base + d + 3u]); }
  var r = vec4f(0.0);
  for (var e = 0u; d + e < p.D; e++) { r[e] = K[base + d + e]; }
  return r;
}
fn loadV4(base: u32, c: u32) -> vec4f {
  let d = 4u * c;
  if (d + 4u <= p.D) { return vec4f(V[base + d], V[base + d + 1u], V[base + d + 2u], V[base + d + 3u]); }
  var r = vec4f(0.0);
  for (var e = 0u; d + e < p.D; e++) { r[e] = V[base + d + e]; }
  return r;
}

@compute @workgroup_size(WG)
fn attention_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let h = wid.y;
  let b = wid.z;
  let row0 = wid.x * WG * RPI;
  let D4 = (p.D + 3u) / 4u;
  let head = h * p.D;
  // Lanes past L compute row L-1 (always in bounds) and store nothing.
  var rows: array<u32, MAX_RPI>;
  var q: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var acc: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var m: array<f32, MAX_RPI>;
  var l: array<f32, MAX_RPI>;
  // Every loop over r is innermost so the compiler unrolls it and splits these arrays per
  // row (indexing them with a runtime row would make every access walk one large array).
  for (var r = 0u; r < RPI; r++) {
    rows[r] = row0 + r * WG + lane;
    m[r] = NEG;
    l[r] = 0.0;
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      q[r][c] = loadQ4((b * p.L + min(rows[r], p.L - 1u)) * p.C + head, c) * p.scale;
      acc[r][c] = vec4f(0.0);
    }
  }
  let keyEnd = min(p.L, row0 + WG * RPI);
  for (var j0 = 0u; j0 < keyEnd; j0 += BK) {
    // Scores, then probabilities, of the tile (explicitly zeroed: a var in a loop body must
    // not keep the previous iteration's values).
    var s: array<array<f32, MAX_BK>, MAX_RPI>;
    var kBase: array<u32, MAX_BK>;
    for (var t = 0u; t < BK; t++) {
      kBase[t] = (b * p.L + min(j0 + t, keyEnd - 1u)) * p.C + head;
      for (var r = 0u; r < RPI; r++) { s[r][t] = 0.0; }
    }
    for (var c = 0u; c < D4; c++) {
      var kc: array<vec4f, MAX_BK>;
      for (var t = 0u; t < BK; t++) { kc[t] = loadK4(kBase[t], c); }
      for (var r = 0u; r < RPI; r++) {
        let qc = q[r][c];
        for (var t = 0u; t < BK; t++) { s[r][t] += dot(qc, kc[t]); }
      }
    }
    var live: array<bool, MAX_BK>;
    for (var t = 0u; t < BK; t++) { live[t] = j0 + t < keyEnd && keyValid(b, min(j0 + t, keyEnd - 1u)); }
    var factor: array<f32, MAX_RPI>;
    for (var r = 0u; r < RPI; r++) {
      var tileMax = m[r];
      for (var t = 0u; t < BK; t++) {
        s[r][t] = select(NEG, s[r][t], live[t] && j0 + t <= rows[r]);
        tileMax = max(tileMax, s[r][t]);
      }
      // m == NEG before the first valid key: the factor is exp(-huge) = 0 and acc is 0 anyway.
      factor[r] = exp(m[r] - tileMax);
      m[r] = tileMax;
      l[r] *= factor[r];
      for (var t = 0u; t < BK; t++) {
        s[r][t] = select(0.0, exp(s[r][t] - tileMax), s[r][t] > NEG);
        l[r] += s[r][t];
      }
    }
    for (var c = 0u; c < D4; c++) {
      var vc: array<vec4f, MAX_BK>;
      for (var t = 0u; t < BK; t++) { vc[t] = loadV4(kBase[t], c); }
      for (var r = 0u; r < RPI; r++) {
        var a = acc[r][c] * factor[r];
        for (var t = 0u; t < BK; t++) { a = fma(vec4f(s[r][t]), vc[t], a); }
        acc[r][c] = a;
      }
    }
  }
  var inv: array<f32, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) {
    inv[r] = select(0.0, 1.0 / l[r], l[r] > 0.0);
    if (rows[r] < p.L) { LSE[(b * p.H + h) * p.L + rows[r]] = select(EMPTY_ROW, m[r] + log(l[r]), l[r] > 0.0); }
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      let o = acc[r][c] * inv[r];
      let oBase = (b * p.L + rows[r]) * p.C + head + 4u * c;
      for (var e = 0u; e < 4u; e++) {
        if (rows[r] < p.L && 4u * c + e < p.D) { O[oBase + e] = o[e]; }
      }
    }
  }
}
