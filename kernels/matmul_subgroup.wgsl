enable subgroups;

// C[b] = alpha * op(A[b]) op(B[b]) with op(A) M x K and op(B) K x N, K and N multiples of 4
// (and M too when A is transposed; the op pads operands that are not). A is stored M x K,
// or K x M when TRANS_A; B is stored K x N, or N x K when TRANS_B. For CPU adapters whose
// subgroups are at least 8 lanes wide (lavapipe runs a subgroup as the lanes of one SIMD
// register).
//
// Every storage load with a loop-dependent address costs a per-lane loop there, so the
// kernel makes each load feed as many multiply-adds as it can: lane l of a subgroup loads
// four k-values of row row0 + l of A in one vec4, and subgroupBroadcast hands all 8 rows to
// every lane; each lane owns one vec4 of columns of B and C. Per 4 k-steps a lane issues 5
// vec4 loads for 128 multiply-adds, with 8 vec4 accumulators in registers.

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;

override WG: u32 = 8u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;

fn rowTimesB(a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>, acc: vec4<f32>) -> vec4<f32> {
  return fma(vec4(a.x), b0, fma(vec4(a.y), b1, fma(vec4(a.z), b2, fma(vec4(a.w), b3, acc))));
}

fn store(base: u32, row: u32, col4: u32, N4: u32, v: vec4<f32>) {
  if (row < p.M) { C[base + row * N4 + col4] = p.alpha * v; }
}

@compute @workgroup_size(WG)
fn matmul_subgroup(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lane: u32,
  @builtin(subgroup_invocation_id) sl: u32,
) {
  let N4 = p.N / 4u;
  let K4 = p.K / 4u;
  let M4 = p.M / 4u;
  let baseA = wid.z * (p.strideA / 4u);
  let baseB = wid.z * (p.strideB / 4u);
  let baseC = wid.z * (p.strideC / 4u);
  let row0 = wid.y * 8u;
  let col4 = wid.x * WG + lane;
  // Out-of-range lanes read valid addresses (the last row or column) and store nothing.
  let col = min(col4, N4 - 1u);
  var acc0 = vec4<f32>(); var acc1 = vec4<f32>(); var acc2 = vec4<f32>(); var acc3 = vec4<f32>();
  var acc4 = vec4<f32>(); var acc5 = vec4<f32>(); var acc6 = vec4<f32>(); var acc7 = vec4<f32>();
  for (var k4 = 0u; k4 < K4; k4++) {
    // rows[r] = the 4 k-values of row row0 + r of op(A).
    var rows = array<vec4<f32>, 8>();
    if (TRANS_A) {
      // Lane sl holds k-offset sl / 2, rows row0 + 4 (sl % 2) .. + 3 (a vec4 of A's row k).
      let a = A[baseA + (k4 * 4u + (sl >> 1u)) * M4 + min(wid.y * 2u + (sl & 1u), M4 - 1u)];
      let t00 = subgroupBroadcast(a, 0u); let t01 = subgroupBroadcast(a, 1u);
      let t10 = subgroupBroadcast(a, 2u); let t11 = subgroupBroadcast(a, 3u);
      let t20 = subgroupBroadcast(a, 4u); let t21 = subgroupBroadcast(a, 5u);
      let t30 = subgroupBroadcast(a, 6u); let t31 = subgroupBroadcast(a, 7u);
      rows[0] = vec4(t00.x, t10.x, t20.x, t30.x); rows[1] = vec4(t00.y, t10.y, t20.y, t30.y);
      rows[2] = vec4(t00.z, t10.z, t20.z, t30.z); rows[3] = vec4(t00.w, t10.w, t20.w, t30.w);
      rows[4] = vec4(t01.x, t11.x, t21.x, t31.x); rows[5] = vec4(t01.y, t11.y, t21.y, t31.y);
      rows[6] = vec4(t01.z, t11.z, t21.z, t31.z); rows[7] = vec4(t01.w, t11.w, t21.w, t31.w);
    } else {
      // Lane sl holds 4 k-values of row row0 + sl.
      let a = A[baseA + min(row0 + sl, p.M - 1u) * K4 + k4];
      rows[0] = subgroupBroadcast(a, 0u); rows[1] = subgroupBroadcast(a, 1u);
      rows[2] = subgroupBroadcast(a, 2u); rows[3] = subgroupBroadcast(a, 3u);
      rows[4] = subgroupBroadcast(a, 4u); rows[5] = subgroupBroadcast(a, 5u);
      rows[6] = subgroupBroadcast(a, 6u); rows[7] = subgroupBroadcast(a, 7u);
    }
    // b0..b3: rows k4 * 4 + 0..3 of op(B), at this lane's 4 columns.
    var b0: vec4<f32>; var b1: vec4<f32>; var b2: vec4<f32>; var b3: vec4<f32>;
    if (TRANS_B) {
      // Four columns of op(B) are four rows of B: load them and transpose the 4 x 4 block.
      let n0 = 4u * col;
      let c0 = B[baseB + n0 * K4 + k4];
      let c1 = B[baseB + min(n0 + 1u, p.N - 1u) * K4 + k4];
      let c2 = B[baseB + min(n0 + 2u, p.N - 1u) * K4 + k4];
      let c3 = B[baseB + min(n0 + 3u, p.N - 1u) * K4 + k4];
      b0 = vec4(c0.x, c1.x, c2.x, c3.x);
      b1 = vec4(c0.y, c1.y, c2.y, c3.y);
      b2 = vec4(c0.z, c1.z, c2.z, c3.z);
      b3 = vec4(c0.w, c1.w, c2.w, c3.w);
    } else {
      let kb = baseB + k4 * 4u * N4 + col;
      b0 = B[kb];
      b1 = B[kb + N4];
      b2 = B[kb + 2u * N4];
      b3 = B[kb + 3u * N4];
    }
    acc0 = rowTimesB(rows[0], b0, b1, b2, b3, acc0);
    acc1 = rowTimesB(rows[1], b0, b1, b2, b3, acc1);
    acc2 = rowTimesB(rows[2], b0, b1, b2, b3, acc2);
    acc3 = rowTimesB(rows[3], b0, b1, b2, b3, acc3);
    acc4 = rowTimesB(rows[4], b0, b1, b2, b3, acc4);
    acc5 = rowTimesB(rows[5], b0, b1, b2, b3, acc5);
    acc6 = rowTimesB(rows[6], b0, b1, b2, b3, acc6);
    acc7 = rowTimesB(rows[7], b0, b1, b2, b3, acc7);
  }
  if (col4 < N4) {
    store(baseC, row0, col4, N4, acc0);
    store(baseC, row0 + 1u, col4, N4, acc1);
    store(baseC, row0 + 2u, col4, N4, acc2);
    store(baseC, row0 + 3u, col4, N4, acc3);
    store(baseC, row0 + 4u, col4, N4, acc4);
    store(baseC, row0 + 5u, col4, N4, acc5);
    store(baseC, row0 + 6u, col4, N4, acc6);
    store(baseC, row0 + 7u, col4, N4, acc7);
  }
}
