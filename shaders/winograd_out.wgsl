// Winograd F(2x2, 3x3) output transform (see winograd_in.wgsl): M (16, tiles, Cout), the
// products of the transformed input and weights, -> y (B, H, W, Cout) = act(A^T m A + bias
// [+ residual]), with A^T = [1 1 1 0; 0 1 -1 -1], for the 2 x 2 output pixels of each tile
// that lie inside the image. The optional residual (B, H, W, Cout) is added before the
// activation (TAESD's Block: conv, + input, ReLU, in one pass).
// One invocation per (tile, 4 channels); the same kernel serves CPU adapters and GPUs.
//
// Composed after common/winograd_params.wgsl (host/src/ops/winograd.rs; Params, Q, flat).

@group(0) @binding(0) var<storage, read> m: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> res: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

fn act4(v: vec4<f32>) -> vec4<f32> {
    switch params.act {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return v / (vec4<f32>(1.0) + exp(-v)); }
        case 3u: { return clamp(v, vec4<f32>(0.0), vec4<f32>(6.0)); }
        default: { return v; }
    }
}

// Row i of the tile's 4 x 4 products, transformed along x: (m0 + m1 + m2, m1 - m2 - m3).
// A pair of vec4s (a struct, not an array: lavapipe keeps arrays in per-lane memory).
struct P {
    l: vec4<f32>,
    r: vec4<f32>,
}

fn row(i: u32, t: u32, c: u32) -> P {
    let stride = params.tiles * params.c4;
    let base = (4u * i * params.tiles + t) * params.c4 + c;
    let m0 = m[base];
    let m1 = m[base + stride];
    let m2 = m[base + 2u * stride];
    let m3 = m[base + 3u * stride];
    return P(m0 + m1 + m2, m1 - m2 - m3);
}

fn put(row0: u32, oy: u32, ox: u32, c: u32, v: vec4<f32>, b: vec4<f32>) {
    if oy >= params.h || ox >= params.w {
        return;
    }
    let i = ((row0 + oy) * params.w + ox) * params.c4 + c;
    var s = v + b;
    if params.has_res == 1u {
        s += res[i];
    }
    y[i] = act4(s);
}

@compute @workgroup_size(64, 1, 1)
fn winograd_out(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = flat(gid, groups);
    if idx >= params.tiles * params.c4 {
        return;
    }
    let c = idx % params.c4;
    let t = idx / params.c4;
    let tx = t % params.tw;
    let ty = params.ty0 + (t / params.tw) % params.th;
    let row0 = (t / (params.tw * params.th)) * params.h;
    let s0 = row(0u, t, c);
    let s1 = row(1u, t, c);
    let s2 = row(2u, t, c);
    let s3 = row(3u, t, c);
    var b = vec4<f32>(0.0);
    if params.has_bias == 1u {
        b = bias[c];
    }
    put(row0, 2u * ty, 2u * tx, c, s0.l + s1.l + s2.l, b);
    put(row0, 2u * ty, 2u * tx + 1u, c, s0.r + s1.r + s2.r, b);
    put(row0, 2u * ty + 1u, 2u * tx, c, s1.l - s2.l - s3.l, b);
    put(row0, 2u * ty + 1u, 2u * tx + 1u, c, s1.r - s2.r - s3.r, b);
}
