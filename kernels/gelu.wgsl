// GELU, tanh approximation, and its derivative:
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
// written as x * sigmoid(2u), which stays finite for any x (tanh through exp overflows).
//   gelu'(x) = s + x s (1 - s) 2 u',  s = sigmoid(2u),  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// Each invocation handles PER_LANE elements strided by the grid width, so loads stay
// contiguous across lanes. The *4 entries work on vec4 elements (n % 4 == 0, n counted in
// vec4s): fewer loads and loop trips on a CPU adapter.

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;
override PER_LANE: u32 = 4u;

const K0: f32 = 0.7978845608028654;
const K1: f32 = 0.044715;

fn sigmoid2u(x: f32) -> f32 {
  let u = K0 * fma(K1 * x, x * x, x);
  return 1.0 / (1.0 + exp(-2.0 * u));
}

fn sigmoid2u4(x: vec4f) -> vec4f {
  let u = K0 * fma(K1 * x, x * x, x);
  return 1.0 / (1.0 + exp(-2.0 * u));
}

fn geluGrad(v: f32) -> f32 {
  let s = sigmoid2u(v);
  return s + 2.0 * v * s * (1.0 - s) * K0 * fma(3.0 * K1 * v, v, 1.0);
}

fn geluGrad4(v: vec4f) -> vec4f {
  let s = sigmoid2u4(v);
  return s + 2.0 * v * s * (1.0 - s) * K0 * fma(3.0 * K1 * v, v, vec4f(1.0));
}

struct Lanes { first: u32, stride: u32 }

fn lanes(gid: vec3u, nwg: vec3u) -> Lanes {
  let width = nwg.x * WG;
  return Lanes(gid.x + gid.y * width, width * nwg.y);
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let l = lanes(gid, nwg);
  for (var k = 0u; k < PER_LANE; k++) {
    let i = l.first + k * l.stride;
    if (i >= p.n) { return; }
    let v = x[i];
    y[i] = v * sigmoid2u(v);
  }
}

@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let l = lanes(gid, nwg);
  for (var k = 0u; k < PER_LANE; k++) {
    let i = l.first + k * l.stride;
    if (i >= p.n) { return; }
    dx[i] = g[i] * geluGrad(x[i]);
  }
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(WG)
fn gelu_forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let l = lanes(gid, nwg);
  for (var k = 0u; k < PER_LANE; k++) {
    let i = l.first + k * l.stride;
    if (i >= p.n) { return; }
    let v = x4[i];
    y4[i] = v * sigmoid2u4(v);
  }
}

@group(0) @binding(2) var<storage, read> g4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dx4: array<vec4f>;

@compute @workgroup_size(WG)
fn gelu_backward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let l = lanes(gid, nwg);
  for (var k = 0u; k < PER_LANE; k++) {
    let i = l.first + k * l.stride;
    if (i >= p.n) { return; }
    dx4[i] = g4[i] * geluGrad4(x4[i]);
  }
}

