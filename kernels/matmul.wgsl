// Batched matmul C[b] = alpha * op(A[b]) op(B[b]) (+ beta * C[b]), op = optional transpose.
// A is M x K (K x M when TRANS_A), B is K x N (N x K when TRANS_B), C is M x N, row-major.
// Batch strides of 0 broadcast an operand over the batch.
//
// Two variants of the same contract:
// - matmul_reg: no workgroup memory. Lanes of a workgroup share one block of TM rows and
//   own columns strided by WG, so each row value is a uniform load and each B row read is
//   contiguous across lanes; TM x TN accumulators per lane. Fast on CPU adapters (lavapipe
//   runs lanes as SIMD) and needs B untransposed (the op transposes B first there).
// - matmul_tiled: TILE x TILE blocks of A and B staged in workgroup memory, each invocation
//   a 4 x 4 register block; for GPUs.

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override WG: u32 = 64u;
const TM: u32 = 8u;
const TN: u32 = 4u;

fn loadA(base: u32, m: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[base + k * p.M + m]; }
  return A[base + m * p.K + k];
}

fn loadB(base: u32, k: u32, n: u32) -> f32 {
  if (TRANS_B) { return B[base + n * p.K + k]; }
  return B[base + k * p.N + n];
}

fn storeC(base: u32, m: u32, n: u32, v: f32) {
  let at = base + m * p.N + n;
  if (p.beta != 0.0) { C[at] = p.alpha * v + p.beta * C[at]; } else { C[at] = p.alpha * v; }
}

@compute @workgroup_size(WG)
fn matmul_reg(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let batch = wid.z;
  let baseA = batch * p.strideA;
  let baseB = batch * p.strideB;
  let baseC = batch * p.strideC;
  let row0 = wid.y * TM;
  let col0 = wid.x * WG * TN + lane;
  var acc: array<array<f32, TN>, TM>;
  // Rows past M read row M-1 and columns past N read column N-1 (always in bounds); their
  // results are never stored.
  var rows: array<u32, TM>;
  for (var r = 0u; r < TM; r++) { rows[r] = min(row0 + r, p.M - 1u); }
  var cols: array<u32, TN>;
  for (var j = 0u; j < TN; j++) { cols[j] = min(col0 + j * WG, p.N - 1u); }
  for (var k = 0u; k < p.K; k++) {
    var a: array<f32, TM>;
    for (var r = 0u; r < TM; r++) { a[r] = loadA(baseA, rows[r], k); }
    var b: array<f32, TN>;
    for (var j = 0u; j < TN; j++) { b[j] = loadB(baseB, k, cols[j]); }
    for (var r = 0u; r < TM; r++) {
      for (var j = 0u; j < TN; j++) { acc[r][j] = fma(a[r], b[j], acc[r][j]); }
    }
  }
  for (var r = 0u; r < TM; r++) {
    let m = row0 + r;
    if (m >= p.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let n = col0 + j * WG;
      if (n < p.N) { storeC(baseC, m, n, acc[r][j]); }
    }
  }
}

const TILE: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> tileA: array<f32, TILE * TK>;
var<workgroup> tileB: array<f32, TK * TILE>;

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let batch = wid.z;
  let baseA = batch * p.strideA;
  let baseB = batch * p.strideB;
  let baseC = batch * p.strideC;
  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  let t = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // 256 invocations stage 64 x 16 values of each operand, 4 each.
    for (var i = 0u; i < 4u; i++) {
      let e = t + i * 256u;
      let am = e / TK; let ak = e % TK;
      let gm = row0 + am; let gk = k0 + ak;
      tileA[am * TK + ak] = select(0.0, loadA(baseA, min(gm, p.M - 1u), min(gk, p.K - 1u)), gm < p.M && gk < p.K);
      let bk = e / TILE; let bn = e % TILE;
      let gk2 = k0 + bk; let gn = col0 + bn;
      tileB[bk * TILE + bn] = select(0.0, loadB(baseB, min(gk2, p.K - 1u), min(gn, p.N - 1u)), gk2 < p.K && gn < p.N);
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = tileA[(lid.y + 16u * i) * TK + k];
        b[i] = tileB[k * TILE + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      let m = row0 + lid.y + 16u * i;
      let n = col0 + lid.x + 16u * j;
      if (m < p.M && n < p.N) { storeC(baseC, m, n, acc[i][j]); }
    }
  }
}
