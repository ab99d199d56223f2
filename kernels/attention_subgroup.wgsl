enable subgroups;

// Causal multi-head attention, forward, for CPU adapters whose subgroups are at least 8
// lanes wide (lavapipe runs a subgroup as the lanes of one SIMD register). Layouts, the
// online softmax and the LSE contract are those of attention.wgsl; the head dim must be a
// multiple of 4 so that head rows are whole vec4s.
//
// There every storage load with a loop-dependent address costs a per-lane loop, even when
// all lanes read the same element, while subgroupBroadcast from a constant lane is a cheap
// register shuffle. So a workgroup is one subgroup of 8 lanes; lane l owns query rows
// row0 + r * 8 + l (r < RPI) with their queries and output accumulators in private arrays,
// and keys come in tiles of KG * 8: for each vec4 c of the head dim, lane l loads vec4 c of
// key (then value) rows j0 + g * 8 + l and broadcasts them, so one load per lane feeds
// 8 * RPI four-term products. The softmax of a row stays inside its lane. Rows are the
// innermost loops so the compiler unrolls them and keeps the score tile in registers.

struct Params { L: u32, C: u32, H: u32, D: u32, rows: u32, hasMask: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Q: array<vec4f>;
@group(0) @binding(2) var<storage, read> K: array<vec4f>;
@group(0) @binding(3) var<storage, read> V: array<vec4f>;
@group(0) @binding(4) var<storage, read> keyMask: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> LSE: array<f32>;

override RPI: u32 = 4u;
// Key tile: KG groups of 8 keys; lane l loads keys j0 + g * 8 + l.
override KG: u32 = 2u;

// Lanes of the subgroup, which is the whole workgroup.
const LANES: u32 = 8u;
// Private arrays are sized for the largest settings; loops run to the overrides, and with
// RPI a constant the compiler unrolls every loop over rows and tile keys.
const MAX_D4: u32 = 32u;
const MAX_RPI: u32 = 4u;
const MAX_KG: u32 = 2u;
const MAX_BK: u32 = 16u;
// Finite stand-ins for -inf: WGSL may assume arithmetic never meets infinities.
const NEG: f32 = -3.0e38;
const EMPTY_ROW: f32 = -3.0e38;

// The vec4 each lane holds, as seen by every lane (the lane index must be a constant).
fn shareTile(v: vec4f) -> array<vec4f, 8> {
  return array<vec4f, 8>(
    subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
    subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
  );
}
fn shareFlags(v: bool) -> array<bool, 8> {
  let u = select(0u, 1u, v);
  return array<bool, 8>(
    subgroupBroadcast(u, 0u) != 0u, subgroupBroadcast(u, 1u) != 0u, subgroupBroadcast(u, 2u) != 0u, subgroupBroadcast(u, 3u) != 0u,
    subgroupBroadcast(u, 4u) != 0u, subgroupBroadcast(u, 5u) != 0u, subgroupBroadcast(u, 6u) != 0u, subgroupBroadcast(u, 7u) != 0u,
  );
}

// acc + a . b, accumulated in a fixed order.
fn dotAcc(a: vec4f, b: vec4f, acc: f32) -> f32 {
  return fma(a.w, b.w, fma(a.z, b.z, fma(a.y, b.y, fma(a.x, b.x, acc))));
}

@compute @workgroup_size(LANES)
fn attention_fwd_subgroup(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wid.y;
  let b = wid.z;
  let row0 = wid.x * LANES * RPI;
  let D4 = p.D / 4u;
  let C4 = p.C / 4u;
  let head4 = h * D4;
  // Lanes past L compute row L-1 (always in bounds) and store nothing.
  var rows: array<u32, MAX_RPI>;
  var q: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var acc: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var m: array<f32, MAX_RPI>;
  var l: array<f32, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) {
    rows[r] = row0 + r * LANES + lane;
    m[r] = NEG;
    l[r] = 0.0;
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      q[r][c] = Q[(b * p.L + min(rows[r], p.L - 1u)) * C4 + head4 + c] * p.scale;
      acc[r][c] = vec4f(0.0);
    }
  }
  let keyEnd = min(p.L, row0 + LANES * RPI);
  let BK = LANES * KG;
  for (var j0 = 0u; j0 < keyEnd; j0 += BK) {
    // This lane's key rows of the tile (clamped in bounds; keys past keyEnd are dead).
    var kvBase: array<u32, MAX_KG>;
    var live: array<bool, MAX_BK>;
    for (var g = 0u; g < KG; g++) {
      let key = min(j0 + g * LANES + lane, keyEnd - 1u);
      kvBase[g] = (b * p.L + key) * C4 + head4;
      let flags = shareFlags(j0 + g * LANES + lane < keyEnd && (p.hasMask == 0u || keyMask[b * p.L + key] != 0u));
      for (var t = 0u; t < LANES; t++) { live[g * LANES + t] = flags[t]; }
    }
    // Scores, then probabilities, of the tile (explicitly zeroed: a var in a loop body must
    // not keep the previous iteration's values).
    var s: array<array<f32, MAX_BK>, MAX_RPI>;
    for (var r = 0u; r < RPI; r++) {
      for (var g = 0u; g < KG; g++) {
        for (var t = 0u; t < LANES; t++) { s[r][g * LANES + t] = 0.0; }
      }
    }
    for (var c = 0u; c < D4; c++) {
      var qc: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { qc[r] = q[r][c]; }
      for (var g = 0u; g < KG; g++) {
        let kt = shareTile(K[kvBase[g] + c]);
        for (var t = 0u; t < LANES; t++) {
          for (var r = 0u; r < RPI; r++) { s[r][g * LANES + t] = dotAcc(qc[r], kt[t], s[r][g * LANES + t]); }
        }
      }
    }
    var factor: array<f32, MAX_RPI>;
    for (var r = 0u; r < RPI; r++) {
      var tileMax = m[r];
      for (var g = 0u; g < KG; g++) {
        for (var t = 0u; t < LANES; t++) {
          let k = g * LANES + t;
          s[r][k] = select(NEG, s[r][k], live[k] && j0 + k <= rows[r]);
          tileMax = max(tileMax, s[r][k]);
        }
      }
      // m == NEG before the first valid key: the factor is exp(-huge) = 0 and acc is 0 anyway.
      factor[r] = exp(m[r] - tileMax);
      m[r] = tileMax;
      var sum = l[r] * factor[r];
      for (var g = 0u; g < KG; g++) {
        for (var t = 0u; t < LANES; t++) {
          let k = g * LANES + t;
          s[r][k] = select(0.0, exp(s[r][k] - tileMax), s[r][k] > NEG);
          sum += s[r][k];
        }
      }
      l[r] = sum;
    }
    for (var c = 0u; c < D4; c++) {
      var a: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { a[r] = acc[r][c] * factor[r]; }
      for (var g = 0u; g < KG; g++) {
        let vt = shareTile(V[kvBase[g] + c]);
        for (var t = 0u; t < LANES; t++) {
          for (var r = 0u; r < RPI; r++) { a[r] = fma(vec4f(s[r][g * LANES + t]), vt[t], a[r]); }
        }
      }
      for (var r = 0u; r < RPI; r++) { acc[r][c] = a[r]; }
    }
  }
  var inv: array<f32, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) {
    inv[r] = select(0.0, 1.0 / l[r], l[r] > 0.0);
    if (rows[r] < p.L) { LSE[(b * p.H + h) * p.L + rows[r]] = select(EMPTY_ROW, m[r] + log(l[r]), l[r] > 0.0); }
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      if (rows[r] < p.L) { O[(b * p.L + rows[r]) * C4 + head4 + c] = acc[r][c] * inv[r]; }
    }
  }
}
