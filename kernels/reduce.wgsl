// Deterministic reductions with a fixed order, no atomics:
// - sumsq_partials: workgroup w of one tensor covers CHUNK * WG elements; lane l adds the
//   squares of elements w*CHUNK*WG + l + t*WG (t = 0..CHUNK-1, contiguous across lanes) and
//   writes one partial at offset + w*WG + l. Several tensors share one partials buffer.
//   sumsq_partials4 does the same over vec4 elements (size % 4 == 0, n counted in vec4s).
// - sum_partials: one workgroup; lane l adds partials l, l + WG, ...; lane 0 then adds the WG
//   lane sums in order. Optionally the square root (a global gradient norm).
// - masked_mean: one workgroup; sum(values) / max(sum(weights), 1) (a mean over the rows that
//   count; 0 when none does) and the weight sum.
// - clip_scale: min(1, maxNorm / (norm + 1e-6)).

struct Params { n: u32, offset: u32, groups: u32, flag: u32, value: f32 }
@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;
override CHUNK: u32 = 256u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(WG)
fn sumsq_partials(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= p.groups) { return; }
  let base = w * CHUNK * WG + lane;
  var acc = 0.0;
  for (var t = 0u; t < CHUNK; t++) {
    let i = base + t * WG;
    if (i >= p.n) { break; }
    let v = x[i];
    acc = fma(v, v, acc);
  }
  partials[p.offset + w * WG + lane] = acc;
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;

@compute @workgroup_size(WG)
fn sumsq_partials4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= p.groups) { return; }
  let base = w * CHUNK * WG + lane;
  var acc = vec4f(0.0);
  for (var t = 0u; t < CHUNK; t++) {
    let i = base + t * WG;
    if (i >= p.n) { break; }
    let v = x4[i];
    acc = fma(v, v, acc);
  }
  partials[p.offset + w * WG + lane] = (acc.x + acc.y) + (acc.z + acc.w);
}

var<workgroup> laneSums: array<f32, WG>;
var<workgroup> laneWeights: array<f32, WG>;

@group(0) @binding(2) var<storage, read_write> total: array<f32>;

@compute @workgroup_size(WG)
fn sum_partials(@builtin(local_invocation_index) lane: u32) {
  var acc = 0.0;
  for (var i = lane; i < p.n; i += WG) { acc += x[i]; }
  laneSums[lane] = acc;
  workgroupBarrier();
  if (lane == 0u) {
    var s = 0.0;
    for (var l = 0u; l < WG; l++) { s += laneSums[l]; }
    total[0] = select(s, sqrt(s), p.flag != 0u);
  }
}

@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> weightSum: array<f32>;

@compute @workgroup_size(WG)
fn masked_mean(@builtin(local_invocation_index) lane: u32) {
  var acc = 0.0;
  var cnt = 0.0;
  for (var i = lane; i < p.n; i += WG) {
    acc += x[i];
    cnt += weights[i];
  }
  laneSums[lane] = acc;
  laneWeights[lane] = cnt;
  workgroupBarrier();
  if (lane == 0u) {
    var s = 0.0;
    var c = 0.0;
    for (var l = 0u; l < WG; l++) {
      s += laneSums[l];
      c += laneWeights[l];
    }
    mean[0] = s / max(c, 1.0);
    weightSum[0] = c;
  }
}

@group(0) @binding(2) var<storage, read_write> scale: array<f32>;

@compute @workgroup_size(1)
fn clip_scale() {
  scale[0] = min(1.0, p.value / (x[0] + 1e-6));
}
