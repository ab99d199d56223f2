enable subgroups;

// C[b] = alpha * A[b] B[b] for row-major A (M x K) and B (K x N) with K and N multiples of 4
// (the op lays operands out that way first). For CPU adapters whose subgroups are at least
// 8 lanes wide (lavapipe runs a subgroup as the lanes of one SIMD register).
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
  let baseA = wid.z * (p.strideA / 4u);
  let baseB = wid.z * (p.strideB / 4u);
  let baseC = wid.z * (p.strideC / 4u);
  let row0 = wid.y * 8u;
  let col4 = wid.x * WG + lane;
  // Out-of-range lanes read valid addresses (row M-1, the last column) and store nothing.
  let col = min(col4, N4 - 1u);
  let arow = baseA + min(row0 + sl, p.M - 1u) * K4;
  var acc0 = vec4<f32>(); var acc1 = vec4<f32>(); var acc2 = vec4<f32>(); var acc3 = vec4<f32>();
  var acc4 = vec4<f32>(); var acc5 = vec4<f32>(); var acc6 = vec4<f32>(); var acc7 = vec4<f32>();
  for (var k4 = 0u; k4 < K4; k4++) {
    let a = A[arow + k4];
    let kb = baseB + k4 * 4u * N4 + col;
    let b0 = B[kb];
    let b1 = B[kb + N4];
    let b2 = B[kb + 2u * N4];
    let b3 = B[kb + 3u * N4];
    acc0 = rowTimesB(subgroupBroadcast(a, 0u), b0, b1, b2, b3, acc0);
    acc1 = rowTimesB(subgroupBroadcast(a, 1u), b0, b1, b2, b3, acc1);
    acc2 = rowTimesB(subgroupBroadcast(a, 2u), b0, b1, b2, b3, acc2);
    acc3 = rowTimesB(subgroupBroadcast(a, 3u), b0, b1, b2, b3, acc3);
    acc4 = rowTimesB(subgroupBroadcast(a, 4u), b0, b1, b2, b3, acc4);
    acc5 = rowTimesB(subgroupBroadcast(a, 5u), b0, b1, b2, b3, acc5);
    acc6 = rowTimesB(subgroupBroadcast(a, 6u), b0, b1, b2, b3, acc6);
    acc7 = rowTimesB(subgroupBroadcast(a, 7u), b0, b1, b2, b3, acc7);
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
