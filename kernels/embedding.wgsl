// Embedding gather: out[n, d] = table[ids[n], d], or 0 where ids[n] is the padding id.
// Workgroup (x, y) covers columns x*WG .. x*WG+WG-1 of rows y*ROWS .. y*ROWS+ROWS-1: lanes walk
// d (table rows read contiguously), each id is a uniform load, and no index is divided.
// Ids were checked against [0, V) on the host before dispatch.

struct Params { N: u32, D: u32, hasPad: u32, padId: i32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;
override ROWS: u32 = 16u;

@compute @workgroup_size(WG)
fn embedding_gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let d = wid.x * WG + lane;
  if (d >= p.D) { return; }
  let n0 = (wid.y + wid.z * nwg.y) * ROWS;
  let n1 = min(n0 + ROWS, p.N);
  for (var n = n0; n < n1; n++) {
    let id = ids[n];
    var v = 0.0;
    if (p.hasPad == 0u || id != p.padId) { v = table[u32(id) * p.D + d]; }
    out[n * p.D + d] = v;
  }
}
