// Embedding backward, a scatter-add without atomics: the host groups the positions of each id
// (counting sort, positions ascending within an id) into
//   segStart [V + 1]: positions of id v are order[segStart[v] .. segStart[v + 1])
//   order    [count]: position indices
// and one invocation per (v, d) adds g[order[k], d] over its segment in that order, so the
// sum is deterministic; ids that never occur get 0. Workgroup (x, y) covers columns
// x*WG .. x*WG+WG-1 of ids y*ROWS .. y*ROWS+ROWS-1: segment bounds are uniform loads and
// gradient rows are read contiguously across lanes.

struct Params { V: u32, D: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> segStart: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> dtable: array<f32>;

override WG: u32 = 64u;
override ROWS: u32 = 16u;

@compute @workgroup_size(WG)
fn embedding_scatter(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let d = wid.x * WG + lane;
  if (d >= p.D) { return; }
  let v0 = (wid.y + wid.z * nwg.y) * ROWS;
  let v1 = min(v0 + ROWS, p.V);
  for (var v = v0; v < v1; v++) {
    let end = segStart[v + 1u];
    var acc = 0.0;
    for (var k = segStart[v]; k < end; k++) {
      acc += g[order[k] * p.D + d];
    }
    dtable[v * p.D + d] = acc;
  }
}
