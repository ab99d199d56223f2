// Causal multi-head attention, backward by recomputation (layouts as in attention.wgsl).
// With s_ij = scale q_i . k_j, p_ij = exp(s_ij - lse_i) and Drow_i = dO_i . O_i:
//   dp_ij = dO_i . v_j,  ds_ij = p_ij (dp_ij - Drow_i)
//   dq_i = scale sum_j ds_ij k_j,  dk_j = scale sum_i ds_ij q_i,  dv_j = sum_i p_ij dO_i
// Three passes, each reducing in a fixed order inside one invocation (no atomics):
// - attention_bwd_rows: Drow_i, packed with lse_i into rowStats [B, H, L, 2] so the next
//   passes stay within 8 storage bindings (the WebGPU default limit).
// - attention_bwd_dq: lanes own query rows (RPI each, as in the forward) and walk the keys
//   in tiles of BT up to the workgroup's last row.
// - attention_bwd_dkdv: lanes own key rows (RPI each) and walk the query rows that can see
//   them, from the workgroup's first key row to L, in tiles of BT.
// As in the forward, each element loaded from a tile feeds RPI rows (storage loads dominate
// on CPU adapters), and every loop over rows is innermost so it unrolls.
// Rows with no valid key (lse_i == EMPTY_ROW) contribute nothing; masked keys get zero dK, dV.

struct Params { L: u32, C: u32, H: u32, D: u32, rows: u32, hasMask: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 16u;
override RPI: u32 = 4u;
override BT: u32 = 8u;

// Private arrays are sized for the largest settings (see attention.wgsl).
const MAX_D4: u32 = 32u;
const MAX_RPI: u32 = 4u;
const MAX_BT: u32 = 8u;
const EMPTY_ROW: f32 = -3.0e38;

// attention_bwd_rows bindings: one invocation per (b, h, i), `rows` = B * H * L.
@group(0) @binding(1) var<storage, read> rowO: array<f32>;
@group(0) @binding(2) var<storage, read> rowDO: array<f32>;
@group(0) @binding(3) var<storage, read> rowLSE: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowStatsOut: array<vec2f>;

@compute @workgroup_size(WG)
fn attention_bwd_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let i = r % p.L;
  let bh = r / p.L;
  let h = bh % p.H;
  let b = bh / p.H;
  let base = (b * p.L + i) * p.C + h * p.D;
  var drow = 0.0;
  for (var d = 0u; d < p.D; d++) { drow = fma(rowDO[base + d], rowO[base + d], drow); }
  rowStatsOut[r] = vec2f(rowLSE[r], drow);
}

// attention_bwd_dq and attention_bwd_dkdv bindings
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> keyMask: array<u32>;
@group(0) @binding(5) var<storage, read> dO: array<f32>;
@group(0) @binding(6) var<storage, read> rowStats: array<vec2f>;

fn keyValid(b: u32, j: u32) -> bool {
  return p.hasMask == 0u || keyMask[b * p.L + j] != 0u;
}

// Four consecutive elements of a head row, zero past D.
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
fn loadDO4(base: u32, c: u32) -> vec4f {
  let d = 4u * c;
  if (d + 4u <= p.D) { return vec4f(dO[base + d], dO[base + d + 1u], dO[base + d + 2u], dO[base + d + 3u]); }
  var r = vec4f(0.0);
  for (var e = 0u; d + e < p.D; e++) { r[e] = dO[base + d + e]; }
  return r;
}

@group(0) @binding(7) var<storage, read_write> dQ: array<f32>;

@compute @workgroup_size(WG)
fn attention_bwd_dq(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let h = wid.y;
  let b = wid.z;
  let row0 = wid.x * WG * RPI;
  let D4 = (p.D + 3u) / 4u;
  let head = h * p.D;
  let statBase = (b * p.H + h) * p.L;
  // Lanes past L compute row L-1 (always in bounds) and store nothing.
  var rows: array<u32, MAX_RPI>;
  var stats: array<vec2f, MAX_RPI>;
  var q: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var g: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var dq: array<array<vec4f, MAX_D4>, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) {
    rows[r] = row0 + r * WG + lane;
    stats[r] = rowStats[statBase + min(rows[r], p.L - 1u)];
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      let base = (b * p.L + min(rows[r], p.L - 1u)) * p.C + head;
      q[r][c] = loadQ4(base, c) * p.scale;
      g[r][c] = loadDO4(base, c);
      dq[r][c] = vec4f(0.0);
    }
  }
  let keyEnd = min(p.L, row0 + WG * RPI);
  for (var j0 = 0u; j0 < keyEnd; j0 += BT) {
    // Explicitly zeroed: a var in a loop body must not keep the previous iteration's values.
    var s: array<array<f32, MAX_BT>, MAX_RPI>;
    var dp: array<array<f32, MAX_BT>, MAX_RPI>;
    var kBase: array<u32, MAX_BT>;
    for (var t = 0u; t < BT; t++) { kBase[t] = (b * p.L + min(j0 + t, keyEnd - 1u)) * p.C + head; }
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        s[r][t] = 0.0;
        dp[r][t] = 0.0;
      }
    }
    for (var c = 0u; c < D4; c++) {
      var kc: array<vec4f, MAX_BT>;
      var vc: array<vec4f, MAX_BT>;
      for (var t = 0u; t < BT; t++) {
        kc[t] = loadK4(kBase[t], c);
        vc[t] = loadV4(kBase[t], c);
      }
      for (var r = 0u; r < RPI; r++) {
        let qc = q[r][c];
        let gc = g[r][c];
        for (var t = 0u; t < BT; t++) {
          s[r][t] += dot(qc, kc[t]);
          dp[r][t] += dot(gc, vc[t]);
        }
      }
    }
    var live: array<bool, MAX_BT>;
    for (var t = 0u; t < BT; t++) { live[t] = j0 + t < keyEnd && keyValid(b, min(j0 + t, keyEnd - 1u)); }
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        // The min keeps exp finite for empty rows (lse = EMPTY_ROW), whose p is discarded.
        let pij = select(0.0, exp(min(s[r][t] - stats[r].x, 0.0)), live[t] && j0 + t <= rows[r] && stats[r].x != EMPTY_ROW);
        dp[r][t] = pij * (dp[r][t] - stats[r].y);
      }
    }
    for (var c = 0u; c < D4; c++) {
      var kc: array<vec4f, MAX_BT>;
      for (var t = 0u; t < BT; t++) { kc[t] = loadK4(kBase[t], c); }
      for (var r = 0u; r < RPI; r++) {
        var a = dq[r][c];
        for (var t = 0u; t < BT; t++) { a = fma(vec4f(dp[r][t]), kc[t], a); }
        dq[r][c] = a;
      }
    }
  }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      let o = dq[r][c] * p.scale;
      let outBase = (b * p.L + rows[r]) * p.C + head + 4u * c;
      for (var e = 0u; e < 4u; e++) {
        if (rows[r] < p.L && 4u * c + e < p.D) { dQ[outBase + e] = o[e]; }
      }
    }
  }
}

// attention_bwd_dkdv bindings 1..6 as attention_bwd_dq
@group(0) @binding(7) var<storage, read_write> dK: array<f32>;
@group(0) @binding(8) var<storage, read_write> dV: array<f32>;

@compute @workgroup_size(WG)
fn attention_bwd_dkdv(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let h = wid.y;
  let b = wid.z;
  let key0 = wid.x * WG * RPI;
  let D4 = (p.D + 3u) / 4u;
  let head = h * p.D;
  let statBase = (b * p.H + h) * p.L;
  var keys: array<u32, MAX_RPI>;
  var k: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var v: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var dk: array<array<vec4f, MAX_D4>, MAX_RPI>;
  var dv: array<array<vec4f, MAX_D4>, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) { keys[r] = key0 + r * WG + lane; }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      let base = (b * p.L + min(keys[r], p.L - 1u)) * p.C + head;
      k[r][c] = loadK4(base, c) * p.scale;
      v[r][c] = loadV4(base, c);
      dk[r][c] = vec4f(0.0);
      dv[r][c] = vec4f(0.0);
    }
  }
  // Query rows before key0 cannot see any key of this workgroup.
  for (var i0 = key0; i0 < p.L; i0 += BT) {
    var s: array<array<f32, MAX_BT>, MAX_RPI>;
    var dp: array<array<f32, MAX_BT>, MAX_RPI>;
    var qBase: array<u32, MAX_BT>;
    var stats: array<vec2f, MAX_BT>;
    for (var t = 0u; t < BT; t++) {
      let ic = min(i0 + t, p.L - 1u);
      qBase[t] = (b * p.L + ic) * p.C + head;
      stats[t] = rowStats[statBase + ic];
    }
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        s[r][t] = 0.0;
        dp[r][t] = 0.0;
      }
    }
    for (var c = 0u; c < D4; c++) {
      var qc: array<vec4f, MAX_BT>;
      var gc: array<vec4f, MAX_BT>;
      for (var t = 0u; t < BT; t++) {
        qc[t] = loadQ4(qBase[t], c);
        gc[t] = loadDO4(qBase[t], c);
      }
      for (var r = 0u; r < RPI; r++) {
        let kc = k[r][c];
        let vc = v[r][c];
        for (var t = 0u; t < BT; t++) {
          s[r][t] += dot(kc, qc[t]);
          dp[r][t] += dot(vc, gc[t]);
        }
      }
    }
    for (var r = 0u; r < RPI; r++) {
      for (var t = 0u; t < BT; t++) {
        let i = i0 + t;
        let pij = select(0.0, exp(min(s[r][t] - stats[t].x, 0.0)), i < p.L && i >= keys[r] && stats[t].x != EMPTY_ROW);
        s[r][t] = pij;
        dp[r][t] = pij * (dp[r][t] - stats[t].y);
      }
    }
    for (var c = 0u; c < D4; c++) {
      var qc: array<vec4f, MAX_BT>;
      var gc: array<vec4f, MAX_BT>;
      for (var t = 0u; t < BT; t++) {
        qc[t] = loadQ4(qBase[t], c);
        gc[t] = loadDO4(qBase[t], c);
      }
      for (var r = 0u; r < RPI; r++) {
        var a = dk[r][c];
        var e = dv[r][c];
        for (var t = 0u; t < BT; t++) {
          a = fma(vec4f(dp[r][t]), qc[t], a);
          e = fma(vec4f(s[r][t]), gc[t], e);
        }
        dk[r][c] = a;
        dv[r][c] = e;
      }
    }
  }
  var keyLive: array<bool, MAX_RPI>;
  for (var r = 0u; r < RPI; r++) { keyLive[r] = keys[r] < p.L && keyValid(b, min(keys[r], p.L - 1u)); }
  for (var c = 0u; c < D4; c++) {
    for (var r = 0u; r < RPI; r++) {
      let ok = select(vec4f(0.0), dk[r][c] * p.scale, keyLive[r]);
      let ov = select(vec4f(0.0), dv[r][c], keyLive[r]);
      let outBase = (b * p.L + keys[r]) * p.C + head + 4u * c;
      for (var e = 0u; e < 4u; e++) {
        if (keys[r] < p.L && 4u * c + e < p.D) {
          dK[outBase + e] = ok[e];
          dV[outBase + e] = ov[e];
        }
      }
    }
  }
}
