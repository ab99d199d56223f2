// Softmax cross-entropy over rows of logits [N, V] with integer targets [N]:
//   lse[r] = log sum_j exp(logits[r, j]),  loss[r] = lse[r] - logits[r, target[r]],
// rows whose target is ignoreIndex (or outside [0, V)) have loss 0 and weight 0. Rows are
// `stride` >= V floats apart: columns V .. stride - 1 are padding and are not read as classes.
// ce_partials: one workgroup per row; lane l covers columns l, l + WG, ... (loads contiguous
//   across lanes, no barrier): its own max, then the sum of exp(x - that max), one exp per
//   element. The pair is written to partials[row, l]. ce_partials4 is the same over vec4
//   columns when the stride is a multiple of 4 (a quarter of the loads and loop trips on a
//   CPU adapter); a last vec4 holding padding is masked, after the whole ones.
// ce_rows: one invocation per row merges the WG pairs in lane order (deterministic).

struct Params { N: u32, V: u32, ignoreIndex: i32, stride: u32 }
@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;
const LOWEST: f32 = -3.4028234e38;

@group(0) @binding(2) var<storage, read_write> partials: array<vec2f>;

fn rowIndex(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

@group(0) @binding(1) var<storage, read> logits: array<f32>;

@compute @workgroup_size(WG)
fn ce_partials(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = rowIndex(wid, nwg);
  if (row >= p.N) { return; }
  let base = row * p.stride;
  var m = LOWEST;
  for (var j = lane; j < p.V; j += WG) { m = max(m, logits[base + j]); }
  var s = 0.0;
  for (var j = lane; j < p.V; j += WG) { s += exp(logits[base + j] - m); }
  partials[row * WG + lane] = vec2f(m, s);
}

@group(0) @binding(1) var<storage, read> logits4: array<vec4f>;

@compute @workgroup_size(WG)
fn ce_partials4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = rowIndex(wid, nwg);
  if (row >= p.N) { return; }
  let V4 = p.V / 4u;
  let base = row * (p.stride / 4u);
  // The vec4 holding the last columns and padding (if V % 4 != 0) belongs to this lane.
  let tail = p.V % 4u != 0u && V4 % WG == lane;
  var last = vec4f(LOWEST);
  if (tail) { last = select(vec4f(LOWEST), logits4[base + V4], vec4u(4u * V4) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.V)); }
  var m4 = last;
  for (var j = lane; j < V4; j += WG) { m4 = max(m4, logits4[base + j]); }
  let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
  var s4 = vec4f(0.0);
  for (var j = lane; j < V4; j += WG) { s4 += exp(logits4[base + j] - m); }
  if (tail) { s4 += exp(last - m); }
  partials[row * WG + lane] = vec2f(m, (s4.x + s4.y) + (s4.z + s4.w));
}

@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> lanePartials: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(5) var<storage, read_write> rowLse: array<f32>;
@group(0) @binding(6) var<storage, read_write> rowWeight: array<f32>;

@compute @workgroup_size(WG)
fn ce_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= p.N) { return; }
  var mx = LOWEST;
  for (var l = 0u; l < WG; l++) { mx = max(mx, lanePartials[row * WG + l].x); }
  var s = 0.0;
  for (var l = 0u; l < WG; l++) {
    let q = lanePartials[row * WG + l];
    s += q.y * exp(q.x - mx);
  }
  let lse = mx + log(s);
  rowLse[row] = lse;
  let t = targets[row];
  if (t != p.ignoreIndex && t >= 0 && u32(t) < p.V) {
    rowLoss[row] = lse - logits[row * p.stride + u32(t)];
    rowWeight[row] = 1.0;
  } else {
    rowLoss[row] = 0.0;
    rowWeight[row] = 0.0;
  }
}
