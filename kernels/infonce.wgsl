// InfoNCE over a similarity matrix sim [N, N] (already divided by the temperature) with a
// positives mask pos [N, N] (nonzero where j is a positive of i; the diagonal never counts):
//   lseAll[i] = log sum_{j != i} exp(sim[i, j]),  lsePos[i] = log sum_{j in P(i)} exp(sim[i, j])
//   loss[i] = lseAll[i] - lsePos[i], weight 1 for rows with a positive, else loss 0, weight 0.
// Each sum has its own max, so positives far below the row max do not underflow to log(0).
// infonce_rows: one invocation per row. infonce_backward: one workgroup per row, lanes over
// columns strided by WG:
//   dsim[i, j] = g / count * (softmax_{j != i}(sim[i])_j - softmax_{P(i)}(sim[i])_j)

struct Params { N: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sim: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;

override WG: u32 = 64u;
const LOWEST: f32 = -3.4028234e38;

@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowWeight: array<f32>;
@group(0) @binding(5) var<storage, read_write> rowLse: array<vec2f>;

@compute @workgroup_size(WG)
fn infonce_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.N) { return; }
  let base = i * p.N;
  var mAll = LOWEST;
  var mPos = LOWEST;
  var positives = 0u;
  for (var j = 0u; j < p.N; j++) {
    if (j == i) { continue; }
    let s = sim[base + j];
    mAll = max(mAll, s);
    if (pos[base + j] != 0u) {
      mPos = max(mPos, s);
      positives++;
    }
  }
  if (positives == 0u) {
    rowLoss[i] = 0.0;
    rowWeight[i] = 0.0;
    rowLse[i] = vec2f(0.0);
    return;
  }
  var sAll = 0.0;
  var sPos = 0.0;
  for (var j = 0u; j < p.N; j++) {
    if (j == i) { continue; }
    let s = sim[base + j];
    sAll += exp(s - mAll);
    if (pos[base + j] != 0u) { sPos += exp(s - mPos); }
  }
  let lseAll = mAll + log(sAll);
  let lsePos = mPos + log(sPos);
  rowLoss[i] = lseAll - lsePos;
  rowWeight[i] = 1.0;
  rowLse[i] = vec2f(lseAll, lsePos);
}

@group(0) @binding(3) var<storage, read> lse: array<vec2f>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> count: array<f32>;
@group(0) @binding(6) var<storage, read> gout: array<f32>;
@group(0) @binding(7) var<storage, read_write> dsim: array<f32>;

@compute @workgroup_size(WG)
fn infonce_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = wid.x + wid.y * nwg.x;
  if (i >= p.N) { return; }
  let base = i * p.N;
  if (weight[i] == 0.0) {
    for (var j = lane; j < p.N; j += WG) { dsim[base + j] = 0.0; }
    return;
  }
  let scale = gout[0] / max(count[0], 1.0);
  let l = lse[i];
  for (var j = lane; j < p.N; j += WG) {
    let s = sim[base + j];
    let all = select(exp(s - l.x), 0.0, j == i);
    let positive = select(0.0, exp(s - l.y), j != i && pos[base + j] != 0u);
    dsim[base + j] = (all - positive) * scale;
  }
}
