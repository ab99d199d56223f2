// out[b, c, r] = x[b, r, c] for a batch of R x C matrices.

struct Params { R: u32, C: u32, batch: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

// Lanes walk a contiguous output row (r); y strides over columns so C may pass 65535.
@compute @workgroup_size(WG)
fn transpose(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x;
  let b = gid.z;
  if (r >= p.R) { return; }
  let plane = p.R * p.C;
  for (var c = gid.y; c < p.C; c += nwg.y) {
    out[b * plane + c * p.R + r] = x[b * plane + r * p.C + c];
  }
}
