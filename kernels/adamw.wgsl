// AdamW update in place, decoupled weight decay:
//   g = grad * scale            (scale: gradient-clipping factor read on the GPU, or 1)
//   m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
//   p = p - lr * (m / bc1 / (sqrt(v / bc2) + eps) + weightDecay * p)
// with the bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t computed on the host.
// Each invocation updates PER_LANE elements strided by the grid width (contiguous across
// lanes); adamw_step4 works on vec4 elements (size % 4 == 0, n counted in vec4s).

struct Params {
  n: u32, hasScale: u32,
  lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, bc1: f32, bc2: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> scale: array<f32>;

override WG: u32 = 64u;
override PER_LANE: u32 = 4u;

fn gradScale() -> f32 {
  return select(1.0, scale[0], p.hasScale != 0u);
}

@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn adamw_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let width = nwg.x * WG;
  let first = gid.x + gid.y * width;
  let stride = width * nwg.y;
  let s = gradScale();
  for (var k = 0u; k < PER_LANE; k++) {
    let i = first + k * stride;
    if (i >= p.n) { return; }
    let g = grad[i] * s;
    let mi = fma(p.beta1, m[i], (1.0 - p.beta1) * g);
    let vi = fma(p.beta2, v[i], (1.0 - p.beta2) * g * g);
    m[i] = mi;
    v[i] = vi;
    let w = param[i];
    param[i] = w - p.lr * ((mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps) + p.weightDecay * w);
  }
}

@group(0) @binding(1) var<storage, read> grad4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> param4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> m4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> v4: array<vec4f>;

@compute @workgroup_size(WG)
fn adamw_step4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let width = nwg.x * WG;
  let first = gid.x + gid.y * width;
  let stride = width * nwg.y;
  let s = gradScale();
  for (var k = 0u; k < PER_LANE; k++) {
    let i = first + k * stride;
    if (i >= p.n) { return; }
    let g = grad4[i] * s;
    let mi = fma(vec4f(p.beta1), m4[i], (1.0 - p.beta1) * g);
    let vi = fma(vec4f(p.beta2), v4[i], (1.0 - p.beta2) * g * g);
    m4[i] = mi;
    v4[i] = vi;
    let w = param4[i];
    param4[i] = w - p.lr * ((mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps) + p.weightDecay * w);
  }
}
