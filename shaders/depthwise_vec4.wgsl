// Depthwise conv2d as depthwise.wgsl, four channels per invocation as vec4s (C % 4 == 0): the
// kernel for CPU adapters, whose SIMD lanes then read consecutive vec4s of a pixel's channels.
// The kernel size is a pipeline constant (KH, KW), so the taps unroll; a tap outside the input
// reads a clamped address and adds zero.
//
// Standalone (host/src/ops/depthwise.rs mirrors Params).

struct Params {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    act: u32,        // 0 none, 1 ReLU, 2 SiLU, 3 ReLU6
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;
@group(1) @binding(0) var<uniform> params: Params;

override KH: u32 = 3u;
override KW: u32 = 3u;

fn activate4(v: vec4<f32>) -> vec4<f32> {
    switch params.act {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return v / (vec4<f32>(1.0) + exp(-v)); }
        case 3u: { return clamp(v, vec4<f32>(0.0), vec4<f32>(6.0)); }
        default: { return v; }
    }
}

@compute @workgroup_size(64, 1, 1)
fn depthwise_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * 64u + gid.x;
    let c4 = params.c / 4u;
    if i >= params.batch * params.ho * params.wo * c4 {
        return;
    }
    let c = i % c4;
    let p = i / c4;
    let ox = p % params.wo;
    let oy = (p / params.wo) % params.ho;
    let b = p / (params.wo * params.ho);
    var s = vec4<f32>(0.0);
    if params.has_bias != 0u {
        s = bias[c];
    }
    let y0 = i32(oy * params.stride) - i32(params.pad_top);
    let x0 = i32(ox * params.stride) - i32(params.pad_left);
    for (var ky = 0u; ky < KH; ky++) {
        let iy = y0 + i32(ky);
        let row = (b * params.h + u32(clamp(iy, 0, i32(params.h) - 1))) * params.w;
        let in_y = iy >= 0 && iy < i32(params.h);
        for (var kx = 0u; kx < KW; kx++) {
            let ix = x0 + i32(kx);
            let v = x[(row + u32(clamp(ix, 0, i32(params.w) - 1))) * c4 + c] * wt[(ky * KW + kx) * c4 + c];
            s += select(vec4<f32>(0.0), v, in_y && ix >= 0 && ix < i32(params.w));
        }
    }
    y[i] = activate4(s);
}
