// Backward of prototype matching (prototype.wgsl), per head h of width D (the head index is left
// out below). Cotangents gOut [N, H * D] and gW [N, H, K] (either may be absent: hasGOut /
// hasGW). With c the cosines, w the weights, T the temperature, p_k the keys and v_k the values:
//   dw_k = gOut_n . v_k + gW_nk,   dc_k = w_k (dw_k - sum_j w_j dw_j) / T
//   dx_n = ix (sum_k dc_k ip_k p_k) - [|x_n| > EPS] ix^2 (sum_k dc_k c_k) x_n
//   dp_k = ip_k sum_n dc_nk ix_n x_n - [|p_k| > EPS] ip_k^2 (sum_n dc_nk c_nk) p_k
//   dv_k = sum_n w_nk gOut_n
// with ix = 1 / max(|x_n|, EPS), ip_k = 1 / max(|p_k|, EPS) (a clamped norm passes no gradient).
// With cosine = 0 (dot-product scores) ix = ip_k = 1 and the norm terms vanish (pInv holds ones).
// When the values are the keys (separate = 0) their gradient is dp_k + dv_k, in one output.
//
// prototype_bwd_rows: one invocation per TR rows of one head; writes dx and three [N, H, K]
// planes of scratch (w, dc ix, dc c). prototype_bwd_protos: dP (and dV) in two fixed-order
// stages, partial sums over chunks of rowsPerChunk rows, then a sum of the chunks (sum_rows in
// elementwise.wgsl).

struct Params {
  N: u32, D: u32, K: u32, H: u32, RS: u32, invTemp: f32, hasGOut: u32, hasGW: u32, rowsPerChunk: u32, cosine: u32, separate: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> protos: array<f32>;
@group(0) @binding(3) var<storage, read> vals: array<f32>;
@group(0) @binding(4) var<storage, read> pInv: array<f32>;
@group(0) @binding(5) var<storage, read> gOut: array<f32>;

// Tile sizes: TR rows per lane and TB prototypes (or columns) per register block in
// prototype_bwd_rows; TK prototypes and TD columns per invocation in prototype_bwd_protos.
// Register arrays are sized by the MAX_ bounds; the loops run to the override values.
override WG: u32 = 64u;
override TR: u32 = 4u;
override TB: u32 = 8u;
override TK: u32 = 4u;
override TD: u32 = 4u;
const MAX_TR: u32 = 8u;
const MAX_TB: u32 = 8u;
const MAX_TK: u32 = 8u;
const MAX_TD: u32 = 8u;
const EPS: f32 = 1e-6;

@group(0) @binding(6) var<storage, read> gW: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<storage, read_write> scratch: array<f32>;

// As prototype_match: workgroup (g, z) owns rows [g * WG * TR, +WG * TR) of head z, lane l the
// TR rows l, l + WG, ...; a row's K-long intermediates live in its rows of the scratch planes.
@compute @workgroup_size(WG)
fn prototype_bwd_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_index) lane: u32) {
  let first = (wid.x + wid.y * nwg.x) * WG * TR + lane;
  if (first >= p.N) { return; }
  let h = wid.z;
  let hOff = h * p.D;
  let plane = p.N * p.H * p.K;
  // Rows past N read the lane's first row (its own, always real); only real rows are written.
  var xBase: array<u32, MAX_TR>;
  var wBase: array<u32, MAX_TR>;
  var live: array<bool, MAX_TR>;
  var ix: array<f32, MAX_TR>;
  var xGuarded: array<bool, MAX_TR>;
  for (var r = 0u; r < TR; r++) {
    let n = first + r * WG;
    live[r] = n < p.N;
    let row = select(first, n, live[r]);
    xBase[r] = row * p.RS + hOff;
    wBase[r] = (row * p.H + h) * p.K;
    ix[r] = 1.0;
    xGuarded[r] = true;
    if (p.cosine != 0u) {
      var ss = 0.0;
      for (var d = 0u; d < p.D; d++) {
        let xv = x[xBase[r] + d];
        ss = fma(xv, xv, ss);
      }
      let norm = sqrt(ss);
      ix[r] = 1.0 / max(norm, EPS);
      xGuarded[r] = norm <= EPS;
    }
  }
  // Cosines into plane 2 and gOut . v_k into plane 1, TB prototypes at a time.
  for (var k0 = 0u; k0 < p.K; k0 += TB) {
    var prow: array<u32, MAX_TB>;
    for (var j = 0u; j < TB; j++) { prow[j] = min(k0 + j, p.K - 1u) * p.RS + hOff; }
    var accX = array<array<f32, MAX_TB>, MAX_TR>();
    var accG = array<array<f32, MAX_TB>, MAX_TR>();
    for (var d = 0u; d < p.D; d++) {
      var pv: array<f32, MAX_TB>;
      for (var j = 0u; j < TB; j++) { pv[j] = protos[prow[j] + d]; }
      for (var r = 0u; r < TR; r++) {
        let xv = x[xBase[r] + d];
        for (var j = 0u; j < TB; j++) { accX[r][j] = fma(xv, pv[j], accX[r][j]); }
      }
      if (p.hasGOut != 0u) {
        var vv: array<f32, MAX_TB>;
        for (var j = 0u; j < TB; j++) { vv[j] = vals[prow[j] + d]; }
        for (var r = 0u; r < TR; r++) {
          let gv = gOut[xBase[r] + d];
          for (var j = 0u; j < TB; j++) { accG[r][j] = fma(gv, vv[j], accG[r][j]); }
        }
      }
    }
    for (var j = 0u; j < TB; j++) {
      let k = k0 + j;
      if (k >= p.K) { break; }
      let ip = pInv[h * p.K + k];
      for (var r = 0u; r < TR; r++) {
        if (live[r]) {
          scratch[2u * plane + wBase[r] + k] = accX[r][j] * ix[r] * ip;
          scratch[plane + wBase[r] + k] = accG[r][j];
        }
      }
    }
  }
  // Softmax and its backward per row; the planes become w, dc ix and dc c.
  var xCoef: array<f32, MAX_TR>;
  for (var r = 0u; r < TR; r++) {
    if (!live[r]) { break; }
    let wb = wBase[r];
    var m = -3.4e38;
    for (var k = 0u; k < p.K; k++) { m = max(m, scratch[2u * plane + wb + k] * p.invTemp); }
    var z = 0.0;
    for (var k = 0u; k < p.K; k++) { z += exp(scratch[2u * plane + wb + k] * p.invTemp - m); }
    let invZ = 1.0 / z;
    var wdw = 0.0;
    for (var k = 0u; k < p.K; k++) {
      let w = exp(scratch[2u * plane + wb + k] * p.invTemp - m) * invZ;
      var dw = scratch[plane + wb + k];
      if (p.hasGW != 0u) { dw += gW[wb + k]; }
      wdw = fma(w, dw, wdw);
    }
    var dcc = 0.0;
    for (var k = 0u; k < p.K; k++) {
      let c = scratch[2u * plane + wb + k];
      let w = exp(c * p.invTemp - m) * invZ;
      var dw = scratch[plane + wb + k];
      if (p.hasGW != 0u) { dw += gW[wb + k]; }
      let dc = w * (dw - wdw) * p.invTemp;
      scratch[wb + k] = w;
      scratch[plane + wb + k] = dc * ix[r];
      scratch[2u * plane + wb + k] = dc * c;
      dcc = fma(dc, c, dcc);
    }
    xCoef[r] = select(dcc * ix[r] * ix[r], 0.0, xGuarded[r]);
  }
  // dx = sum_k (dc_k ix) ip_k p_k - xCoef x, TB columns at a time.
  for (var d0 = 0u; d0 < p.D; d0 += TB) {
    var cols: array<u32, MAX_TB>;
    for (var j = 0u; j < TB; j++) { cols[j] = hOff + min(d0 + j, p.D - 1u); }
    var acc = array<array<f32, MAX_TB>, MAX_TR>();
    for (var k = 0u; k < p.K; k++) {
      var pv: array<f32, MAX_TB>;
      let ip = pInv[h * p.K + k];
      for (var j = 0u; j < TB; j++) { pv[j] = protos[k * p.RS + cols[j]] * ip; }
      for (var r = 0u; r < TR; r++) {
        let a = scratch[plane + wBase[r] + k];
        for (var j = 0u; j < TB; j++) { acc[r][j] = fma(a, pv[j], acc[r][j]); }
      }
    }
    for (var r = 0u; r < TR; r++) {
      if (!live[r]) { break; }
      for (var j = 0u; j < TB; j++) {
        let d = d0 + j;
        if (d < p.D) { dx[xBase[r] + d] = acc[r][j] - xCoef[r] * x[xBase[r] + d]; }
      }
    }
  }
}

@group(0) @binding(6) var<storage, read> rowTerms: array<f32>;
@group(0) @binding(7) var<storage, read_write> dPartial: array<f32>;
@group(0) @binding(8) var<storage, read_write> dVPartial: array<f32>;

// dP (and with separate values dV) over the rows of one chunk, [chunks, K, H * D] (the chunks
// are then added in order). One invocation per (TK prototypes, TD columns of one head strided
// by WG), adding its rows in order: the rows' terms are uniform loads, gOut and x rows
// contiguous across lanes. Workgroups: x over D, y over ceil(K / TK), z over chunks x heads.
@compute @workgroup_size(WG)
fn prototype_bwd_protos(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let h = wid.z % p.H;
  let chunk = wid.z / p.H;
  let hOff = h * p.D;
  let d0 = wid.x * WG * TD + lane;
  let k0 = wid.y * TK;
  var cols: array<u32, MAX_TD>;
  for (var i = 0u; i < TD; i++) { cols[i] = hOff + min(d0 + i * WG, p.D - 1u); }
  var ks: array<u32, MAX_TK>;
  for (var j = 0u; j < TK; j++) { ks[j] = min(k0 + j, p.K - 1u); }
  var mix = array<array<f32, MAX_TD>, MAX_TK>();
  var ax = array<array<f32, MAX_TD>, MAX_TK>();
  var e = array<f32, MAX_TK>();
  let plane = p.N * p.H * p.K;
  let n0 = chunk * p.rowsPerChunk;
  let n1 = min(n0 + p.rowsPerChunk, p.N);
  for (var n = n0; n < n1; n++) {
    let wRow = (n * p.H + h) * p.K;
    var xv: array<f32, MAX_TD>;
    for (var i = 0u; i < TD; i++) { xv[i] = x[n * p.RS + cols[i]]; }
    for (var j = 0u; j < TK; j++) {
      let a = rowTerms[plane + wRow + ks[j]];
      for (var i = 0u; i < TD; i++) { ax[j][i] = fma(a, xv[i], ax[j][i]); }
      e[j] += rowTerms[2u * plane + wRow + ks[j]];
    }
    if (p.hasGOut != 0u) {
      var gv: array<f32, MAX_TD>;
      for (var i = 0u; i < TD; i++) { gv[i] = gOut[n * p.RS + cols[i]]; }
      for (var j = 0u; j < TK; j++) {
        let w = rowTerms[wRow + ks[j]];
        for (var i = 0u; i < TD; i++) { mix[j][i] = fma(w, gv[i], mix[j][i]); }
      }
    }
  }
  for (var j = 0u; j < TK; j++) {
    let k = k0 + j;
    if (k >= p.K) { break; }
    let ip = pInv[h * p.K + k];
    // A clamped norm (ip = 1 / EPS) is a constant and passes no gradient; dot scores have no norm.
    let pCoef = select(0.0, ip * ip * e[j], p.cosine != 0u && ip < 1.0 / EPS);
    let at = (chunk * p.K + k) * p.RS + hOff;
    for (var i = 0u; i < TD; i++) {
      let d = d0 + i * WG;
      if (d < p.D) {
        let key = ip * ax[j][i] - pCoef * protos[k * p.RS + hOff + d];
        if (p.separate != 0u) {
          dPartial[at + d] = key;
          dVPartial[at + d] = mix[j][i];
        } else {
          dPartial[at + d] = mix[j][i] + key;
        }
      }
    }
  }
}
