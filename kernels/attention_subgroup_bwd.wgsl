enable subgroups;

// Causal multi-head attention, backward by recomputation, for CPU adapters whose subgroups
// are at least 8 lanes wide. The math, the three passes and the rowStats packing are those
// of attention_bwd.wgsl; the sharing scheme is that of attention_subgroup.wgsl (a workgroup
// is one subgroup of 8 lanes, each lane owns RPI rows, the other operand comes in tiles of
// KG * 8 rows of which lane l loads rows g * 8 + l as vec4s and broadcasts them). The head
// dim must be a multiple of 4.
// - attention_bwd_rows_subgroup: Drow_i = dO_i . O_i with vec4 loads, packed with lse_i.
// - attention_bwd_dq_subgroup: lanes own query rows; key and value rows are shared.
// - attention_bwd_dkdv_subgroup: lanes own key rows; query and dO rows and their stats are
//   shared.
// Each product gets its own pass over the head dim: with two at once the score tiles and
// shared rows overflow the registers. Each reduction runs in a fixed order inside one lane:
// no atomics, no subgroup sums.

struct Params { L: u32, C: u32, H: u32, D: u32, rows: u32, hasMask: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;

override RPI: u32 = 4u;
override KG: u32 = 2u;
override WG: u32 = 64u;

const LANES: u32 = 8u;
// Private arrays are sized for the largest settings (see attention_subgroup.wgsl).
const MAX_D4: u32 = 32u;
const MAX_RPI: u32 = 4u;
const MAX_KG: u32 = 2u;
const MAX_BT: u32 = 16u;
const EMPTY_ROW: f32 = -3.0e38;

fn shareTile(v: vec4f) -> array<vec4f, 8> {
  return array<vec4f, 8>(
    subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
    subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
  );
}
fn shareStats(v: vec2f) -> array<vec2f, 8> {
  return array<vec2f, 8>(
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

fn dotAcc(a: vec4f, b: vec4f, acc: f32) -> f32 {
  return fma(a.w, b.w, fma(a.z, b.z, fma(a.y, b.y, fma(a.x, b.x, acc))));
}

// attention_bwd_rows_subgroup bindings: one invocation per (b, h, i), `rows` = B * H * L.
@group(0) @binding(1) var<storage, read> rowO: array<vec4f>;
@group(0) @binding(2) var<storage, read> rowDO: array<vec4f>;
@group(0) @binding(3) var<storage, read> rowLSE: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowStatsOut: array<vec2f>;

@compute @workgroup_size(WG)
fn attention_bwd_rows_subgroup(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let i = r % p.L;
  let bh = r / p.L;
  let h = bh % p.H;
  let b = bh / p.H;
  let D4 = p.D / 4u;
  let base = (b * p.L + i) * (p.C / 4u) + h * D4;
  var drow = 0.0;
  for (var c = 0u; c < D4; c++) { drow = dotAcc(rowDO[base + c], rowO[base + c], drow); }
  rowStatsOut[r] = vec2f(rowLSE[r], drow);
}

// attention_bwd_dq_subgroup and attention_bwd_dkdv_subgroup bindings
@group(0) @binding(1) var<storage, read> Q: array<vec4f>;
@group(0) @binding(2) var<storage, read> K: array<vec4f>;
@group(0) @binding(3) var<storage, read> V: array<vec4f>;
@group(0) @binding(4) var<storage, read> keyMask: array<u32>;
@group(0) @binding(5) var<storage, read> dO: array<vec4f>;
@group(0) @binding(6) var<storage, read> rowStats: array<vec2f>;

fn keyValid(b: u32, j: u32) -> bool {
  return p.hasMask == 0u || keyMask[b * p.L + j] != 0u;
}

// vec4 c of the KG * 8 rows of a tile, as seen by every lane (bases: this lane's rows).
fn tileQ(bases: array<u32, MAX_KG>, c: u32) -> array<vec4f, MAX_BT> {
  var out: array<vec4f, MAX_BT>;
  for (var g = 0u; g < KG; g++) {
    let rows8 = shareTile(Q[bases[g] + c]);
    for (var t = 0u; t < LANES; t++) { out[g * LANES + t] = rows8[t]; }
  }
  return out;
}
fn tileK(bases: array<u32, MAX_KG>, c: u32) -> array<vec4f, MAX_BT> {
  var out: array<vec4f, MAX_BT>;
  for (var g = 0u; g < KG; g++) {
    let rows8 = shareTile(K[bases[g] + c]);
    for (var t = 0u; t < LANES; t++) { out[g * LANES + t] = rows8[t]; }
  }
  return out;
}
fn tileV(bases: array<u32, MAX_KG>, c: u32) -> array<vec4f, MAX_BT> {
  var out: array<vec4f, MAX_BT>;
  for (var g = 0u; g < KG; g++) {
    let rows8 = shareTile(V[bases[g] + c]);
    for (var t = 0u; t < LANES; t++) { out[g * LANES + t] = rows8[t]; }
  }
  return out;
}
fn tileDO(bases: array<u32, MAX_KG>, c: u32) -> array<vec4f, MAX_BT> {
  var out: array<vec4f, MAX_BT>;
  for (var g = 0u; g < KG; g++) {
    let rows8 = shareTile(dO[bases[g] + c]);
    for (var t = 0u; t < LANES; t++) { out[g * LANES + t] = rows8[t]; }
  }
  return out;
}

@group(0) @binding(7) var<storage, read_write> dQ: array<vec4f>;

@compute @workgroup_size(LANES)
fn attention_bwd_dq_subgroup(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wid.y;
  let b = wid.z;
  let row0 = wid.x * LANES * RPI;
  let D4 = p.D / 4u;
  let C4 = p.C / 4u;
  let head4 = h * D4;
  let statBase = (b * p.H + h) * p.L;
  // Lanes past L compute row L-1 (always in bounds) and store nothing.
  var rows: array<u32, MAX_RPI>;
  var stats: array<vec2f, MAX_RPI>;
  var q: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var dout: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var dq: array<array<vec4f, MAX_D4>, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) {
    rows[r] = row0 + r * LANES + lane;
    stats[r] = rowStats[statBase + min(rows[r], p.L - 1u)];
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      let base = (b * p.L + min(rows[r], p.L - 1u)) * C4 + head4;
      q[r][c] = Q[base + c] * p.scale;
      dout[r][c] = dO[base + c];
      dq[r][c] = vec4f(0.0);
    }
  }
  let keyEnd = min(p.L, row0 + LANES * RPI);
  let BT = LANES * KG;
  for (var j0 = 0u; j0 < keyEnd; j0 += BT) {
    // This lane's key rows of the tile (clamped in bounds; keys past keyEnd are dead).
    var kvBase: array<u32, MAX_KG>;
    var live: array<bool, MAX_BT>;
    for (var g = 0u; g < KG; g++) {
      let key = min(j0 + g * LANES + lane, keyEnd - 1u);
      kvBase[g] = (b * p.L + key) * C4 + head4;
      let flags = shareFlags(j0 + g * LANES + lane < keyEnd && keyValid(b, key));
      for (var t = 0u; t < LANES; t++) { live[g * LANES + t] = flags[t]; }
    }
    // Explicitly zeroed: a var in a loop body must not keep the previous iteration's values.
    var s: array<array<f32, MAX_BT>, MAX_RPI>;
    var ds: array<array<f32, MAX_BT>, MAX_RPI>;
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        s[r][t] = 0.0;
        ds[r][t] = 0.0;
      }
    }
    for (var c = 0u; c < D4; c++) {
      var own: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { own[r] = q[r][c]; }
      let tile = tileK(kvBase, c);
      for (var t = 0u; t < BT; t++) {
        for (var r = 0u; r < RPI; r++) { s[r][t] = dotAcc(own[r], tile[t], s[r][t]); }
      }
    }
    for (var c = 0u; c < D4; c++) {
      var own: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { own[r] = dout[r][c]; }
      let tile = tileV(kvBase, c);
      for (var t = 0u; t < BT; t++) {
        for (var r = 0u; r < RPI; r++) { ds[r][t] = dotAcc(own[r], tile[t], ds[r][t]); }
      }
    }
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        // The min keeps exp finite for empty rows (lse = EMPTY_ROW), whose p is discarded.
        let pij = select(0.0, exp(min(s[r][t] - stats[r].x, 0.0)), live[t] && j0 + t <= rows[r] && stats[r].x != EMPTY_ROW);
        ds[r][t] = pij * (ds[r][t] - stats[r].y);
      }
    }
    for (var c = 0u; c < D4; c++) {
      var own: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { own[r] = dq[r][c]; }
      let tile = tileK(kvBase, c);
      for (var t = 0u; t < BT; t++) {
        for (var r = 0u; r < RPI; r++) { own[r] = fma(vec4f(ds[r][t]), tile[t], own[r]); }
      }
      for (var r = 0u; r < RPI; r++) { dq[r][c] = own[r]; }
    }
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      if (rows[r] < p.L) { dQ[(b * p.L + rows[r]) * C4 + head4 + c] = dq[r][c] * p.scale; }
    }
  }
}

// attention_bwd_dkdv_subgroup bindings 1..6 as attention_bwd_dq_subgroup
@group(0) @binding(7) var<storage, read_write> dK: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> dV: array<vec4f>;

@compute @workgroup_size(LANES)
fn attention_bwd_dkdv_subgroup(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wid.y;
  let b = wid.z;
  let key0 = wid.x * LANES * RPI;
  let D4 = p.D / 4u;
  let C4 = p.C / 4u;
  let head4 = h * D4;
  let statBase = (b * p.H + h) * p.L;
  var keys: array<u32, MAX_RPI>;
  var k: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var v: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var dk: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var dv: array<array<vec4f, MAX_D4>, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) { keys[r] = key0 + r * LANES + lane; }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      let base = (b * p.L + min(keys[r], p.L - 1u)) * C4 + head4;
      k[r][c] = K[base + c] * p.scale;
      v[r][c] = V[base + c];
      dk[r][c] = vec4f(0.0);
      dv[r][c] = vec4f(0.0);
    }
  }
  // Query rows before key0 cannot see any key of this workgroup.
  let BT = LANES * KG;
  for (var i0 = key0; i0 < p.L; i0 += BT) {
    var qBase: array<u32, MAX_KG>;
    var stats: array<vec2f, MAX_BT>;
    for (var g = 0u; g < KG; g++) {
      let row = min(i0 + g * LANES + lane, p.L - 1u);
      qBase[g] = (b * p.L + row) * C4 + head4;
      let stats8 = shareStats(rowStats[statBase + row]);
      for (var t = 0u; t < LANES; t++) { stats[g * LANES + t] = stats8[t]; }
    }
    // Scores, then probabilities (s), and dP, then dS (ds), of the tile.
    var s: array<array<f32, MAX_BT>, MAX_RPI>;
    var ds: array<array<f32, MAX_BT>, MAX_RPI>;
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        s[r][t] = 0.0;
        ds[r][t] = 0.0;
      }
    }
    for (var c = 0u; c < D4; c++) {
      var own: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { own[r] = k[r][c]; }
      let tile = tileQ(qBase, c);
      for (var t = 0u; t < BT; t++) {
        for (var r = 0u; r < RPI; r++) { s[r][t] = dotAcc(own[r], tile[t], s[r][t]); }
      }
    }
    for (var c = 0u; c < D4; c++) {
      var own: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { own[r] = v[r][c]; }
      let tile = tileDO(qBase, c);
      for (var t = 0u; t < BT; t++) {
        for (var r = 0u; r < RPI; r++) { ds[r][t] = dotAcc(own[r], tile[t], ds[r][t]); }
      }
    }
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        let i = i0 + t;
        let pij = select(0.0, exp(min(s[r][t] - stats[t].x, 0.0)), i < p.L && i >= keys[r] && stats[t].x != EMPTY_ROW);
        s[r][t] = pij;
        ds[r][t] = pij * (ds[r][t] - stats[t].y);
      }
    }
    for (var c = 0u; c < D4; c++) {
      var own: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { own[r] = dk[r][c]; }
      let tile = tileQ(qBase, c);
      for (var t = 0u; t < BT; t++) {
        for (var r = 0u; r < RPI; r++) { own[r] = fma(vec4f(ds[r][t]), tile[t], own[r]); }
      }
      for (var r = 0u; r < RPI; r++) { dk[r][c] = own[r]; }
    }
    for (var c = 0u; c < D4; c++) {
      var own: array<vec4f, MAX_RPI>;
      for (var r = 0u; r < RPI; r++) { own[r] = dv[r][c]; }
      let tile = tileDO(qBase, c);
      for (var t = 0u; t < BT; t++) {
        for (var r = 0u; r < RPI; r++) { own[r] = fma(vec4f(s[r][t]), tile[t], own[r]); }
      }
      for (var r = 0u; r < RPI; r++) { dv[r][c] = own[r]; }
    }
  }
  var keyLive: array<bool, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) { keyLive[r] = keys[r] < p.L && keyValid(b, min(keys[r], p.L - 1u)); }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      if (keys[r] < p.L) {
        let at = (b * p.L + keys[r]) * C4 + head4 + c;
        dK[at] = select(vec4f(0.0), dk[r][c] * p.scale, keyLive[r]);
        dV[at] = select(vec4f(0.0), dv[r][c], keyLive[r]);
      }
    }
  }
}
