// Prototype matching (the SPRM's prototype step). Rows x_n [N, H * D] in H heads of width D,
// key prototypes p_k and value prototypes v_k [K, H * D] (the values are the keys themselves
// unless the caller passes others). Per head h, with x_nh, p_kh, v_kh the head's slices:
//   c_nhk = x_nh . p_kh / (max(|x_nh|, EPS) max(|p_kh|, EPS)),  w_nh = softmax_k(c_nhk / temperature),
//   out_nh = sum_k w_nhk v_kh.
// With cosine = 0 the scores are plain dot products, c_nhk = x_nh . p_kh (the released code's
// scaled dot product, or cross-attention to the prototypes; the caller passes 1 / sqrt(D) as
// invTemp). Rows are RS = H * D floats apart; weights are [N, H, K].
// prototype_inv_norms computes 1 / max(|p_kh|, EPS) once; prototype_match then runs one
// invocation per TR rows of one head (workgroups z over heads). Prototype values are uniform
// loads, each serving TR rows and TB prototypes (or TB output columns) held in registers. A
// row's K scores live in its row of `weights`: no private array sized by K, which on CPU
// adapters spills to slow scratch.

struct Params { N: u32, D: u32, K: u32, H: u32, RS: u32, invTemp: f32, cosine: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> protos: array<f32>;

// Tile sizes: TR rows per lane, TB prototypes (or output columns) per register block. Register
// arrays are sized by the MAX_ bounds; the loops run to the override values.
override WG: u32 = 64u;
override TR: u32 = 4u;
override TB: u32 = 8u;
const MAX_TR: u32 = 8u;
const MAX_TB: u32 = 8u;
const EPS: f32 = 1e-6;

fn row_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@group(0) @binding(2) var<storage, read_write> pInvOut: array<f32>;

// One invocation per (head, prototype): pInv[h * K + k].
@compute @workgroup_size(WG)
fn prototype_inv_norms(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = row_index(gid, nwg);
  if (i >= p.H * p.K) { return; }
  // Dot-product scores: a unit scale, no norm to compute.
  if (p.cosine == 0u) {
    pInvOut[i] = 1.0;
    return;
  }
  let at = (i % p.K) * p.RS + (i / p.K) * p.D;
  var ss = 0.0;
  for (var d = 0u; d < p.D; d++) {
    let v = protos[at + d];
    ss = fma(v, v, ss);
  }
  pInvOut[i] = 1.0 / max(sqrt(ss), EPS);
}

@group(0) @binding(2) var<storage, read> vals: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> pInv: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> weights: array<f32>;

// Workgroup (g, z) owns rows [g * WG * TR, +WG * TR) of head z; lane l the TR rows l, l + WG,
// ... of that block, so each prototype value loaded serves TR rows and TB prototypes (or TB
// columns).
@compute @workgroup_size(WG)
fn prototype_match(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) lane: u32) {
  let first = (wid.x + wid.y * nwg.x) * WG * TR + lane;
  if (first >= p.N) { return; }
  let h = wid.z;
  let hOff = h * p.D;
  // Rows past N read the lane's first row (its own, always real); only real rows are written.
  var xBase: array<u32, MAX_TR>;
  var wBase: array<u32, MAX_TR>;
  var live: array<bool, MAX_TR>;
  var scale: array<f32, MAX_TR>;
  for (var r = 0u; r < TR; r++) {
    let n = first + r * WG;
    live[r] = n < p.N;
    let row = select(first, n, live[r]);
    xBase[r] = row * p.RS + hOff;
    wBase[r] = (row * p.H + h) * p.K;
    scale[r] = p.invTemp;
    if (p.cosine != 0u) {
      var ss = 0.0;
      for (var d = 0u; d < p.D; d++) {
        let xv = x[xBase[r] + d];
        ss = fma(xv, xv, ss);
      }
      scale[r] /= max(sqrt(ss), EPS);
    }
  }
  // Scores s_k = c_k / temperature into the rows of `weights`, TB prototypes at a time
  // (indices past K repeat K-1 and are not stored), with the softmax's running max m and
  // sum z = sum_k exp(s_k - m), rescaled whenever m grows.
  var m = array<f32, MAX_TR>();
  var z = array<f32, MAX_TR>();
  for (var r = 0u; r < TR; r++) { m[r] = -3.4e38; }
  for (var k0 = 0u; k0 < p.K; k0 += TB) {
    var prow: array<u32, MAX_TB>;
    for (var j = 0u; j < TB; j++) { prow[j] = min(k0 + j, p.K - 1u) * p.RS + hOff; }
    var acc = array<array<f32, MAX_TB>, MAX_TR>();
    for (var d = 0u; d < p.D; d++) {
      var pv: array<f32, MAX_TB>;
      for (var j = 0u; j < TB; j++) { pv[j] = protos[prow[j] + d]; }
      for (var r = 0u; r < TR; r++) {
        let xv = x[xBase[r] + d];
        for (var j = 0u; j < TB; j++) { acc[r][j] = fma(xv, pv[j], acc[r][j]); }
      }
    }
    // Unrolled to TB (not to the block's real width) so acc stays in registers.
    let kEnd = min(TB, p.K - k0);
    for (var r = 0u; r < TR; r++) {
      var blockMax = m[r];
      for (var j = 0u; j < TB; j++) {
        acc[r][j] *= scale[r] * pInv[h * p.K + min(k0 + j, p.K - 1u)];
        if (j < kEnd) { blockMax = max(blockMax, acc[r][j]); }
      }
      z[r] *= exp(m[r] - blockMax);
      m[r] = blockMax;
      for (var j = 0u; j < TB; j++) {
        if (j < kEnd) {
          z[r] += exp(acc[r][j] - blockMax);
          if (live[r]) { weights[wBase[r] + k0 + j] = acc[r][j]; }
        }
      }
    }
  }
  for (var r = 0u; r < TR; r++) {
    if (!live[r]) { break; }
    let invZ = 1.0 / z[r];
    for (var k = 0u; k < p.K; k++) { weights[wBase[r] + k] = exp(weights[wBase[r] + k] - m[r]) * invZ; }
  }
  // Mixture of the values, TB output columns at a time (columns past D repeat D-1 and are not
  // stored).
  for (var d0 = 0u; d0 < p.D; d0 += TB) {
    var cols: array<u32, MAX_TB>;
    for (var j = 0u; j < TB; j++) { cols[j] = hOff + min(d0 + j, p.D - 1u); }
    var acc = array<array<f32, MAX_TB>, MAX_TR>();
    for (var k = 0u; k < p.K; k++) {
      var pv: array<f32, MAX_TB>;
      for (var j = 0u; j < TB; j++) { pv[j] = vals[k * p.RS + cols[j]]; }
      for (var r = 0u; r < TR; r++) {
        let w = weights[wBase[r] + k];
        for (var j = 0u; j < TB; j++) { acc[r][j] = fma(w, pv[j], acc[r][j]); }
      }
    }
    for (var r = 0u; r < TR; r++) {
      if (!live[r]) { break; }
      for (var j = 0u; j < TB; j++) {
        if (d0 + j < p.D) { out[xBase[r] + d0 + j] = acc[r][j]; }
      }
    }
  }
}
