// Elementwise ops over flat f32 tensors, four elements per invocation.
//   unary:  y = f(x)                      f by `op`: scale, ReLU, SiLU, GELU (erf), tanh clamp,
//                                         quick GELU (x sigmoid(1.702 x), CLIP's),
//                                         ReLU6
//   binary: y = act(a (+ or *) b[i % b_len])   b broadcast over leading dimensions; or, when
//           span > 0, b (B, C) over a (B, .., C): b[(i / span) * b_len + i % b_len]
//   geglu:  y[r, j] = x[r, j] * gelu(x[r, F + j])   x (R, 2F) -> y (R, F)
//
// Composed after common/flat4.wgsl (host/src/ops; Params, params and shared helpers are there).

struct Params {
    n: u32,        // elements of y
    op: u32,
    b_len: u32,    // binary: elements of b (repeats); geglu: F
    act: u32,      // binary: 0 none, 1 ReLU, 2 SiLU, 3 ReLU6
    scale: f32,    // unary scale; tanh clamp bound
    span: u32,     // binary: elements of a per sample when b is per sample, else 0
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: Params;

// erf with max error 1.5e-7 (Abramowitz & Stegun 7.1.26).
fn erf(v: f32) -> f32 {
    let s = sign(v);
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-z * z));
}

fn gelu(v: f32) -> f32 {
    return 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
}

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

fn act(v: f32, kind: u32) -> f32 {
    switch kind {
        case 1u: { return max(v, 0.0); }
        case 2u: { return silu(v); }
        case 3u: { return clamp(v, 0.0, 6.0); }
        default: { return v; }
    }
}

@compute @workgroup_size(64, 1, 1)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let v = a[i];
        var r = v;
        switch params.op {
            case 0u: { r = v * params.scale; }
            case 1u: { r = max(v, 0.0); }
            case 2u: { r = silu(v); }
            case 3u: { r = gelu(v); }
            case 4u: { r = tanh(v / params.scale) * params.scale; }
            case 5u: { r = v / (1.0 + exp(-1.702 * v)); }
            case 6u: { r = clamp(v, 0.0, 6.0); }
            default: {}
        }
        y[i] = r;
    }
}

@compute @workgroup_size(64, 1, 1)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        var bi = i % params.b_len;
        if params.span > 0u {
            bi = (i / params.span) * params.b_len + bi;
        }
        let bv = b[bi];
        var r = a[i] + bv;
        if params.op == 1u {
            r = a[i] * bv;
        }
        y[i] = act(r, params.act);
    }
}

@compute @workgroup_size(64, 1, 1)
fn geglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    let f = params.b_len;
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let r = i / f;
        let j = i % f;
        y[i] = a[r * 2u * f + j] * gelu(a[r * 2u * f + f + j]);
    }
}
