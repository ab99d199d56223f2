// Rank of each row's target among all V scores, for full-vocabulary evaluation:
// rank = #{j : s_j > s_target} + #{j != target : s_j == s_target} (ties count against the
// target, so a constant scorer does not look perfect). Rows whose target is out of range
// (ignored rows) get rank 0xffffffff. One invocation per row loops over the vocabulary.

struct Params { rows: u32, V: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> ranks: array<u32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn target_rank(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= p.rows) { return; }
  let t = targets[row];
  if (t < 0 || u32(t) >= p.V) {
    ranks[row] = 0xffffffffu;
    return;
  }
  let base = row * p.V;
  let st = scores[base + u32(t)];
  var above = 0u;
  for (var j = 0u; j < p.V; j++) {
    let s = scores[base + j];
    above += select(0u, 1u, s > st || (s == st && j != u32(t)));
  }
  ranks[row] = above;
}
