// Depthwise conv2d as depthwise.wgsl, four channels of two horizontally adjacent output pixels
// per invocation as vec4s (C % 4 == 0): the kernel for CPU adapters, whose SIMD lanes then
// read consecutive vec4s of a pixel's channels; the two pixels share the weights and, at
// stride 1, all but one column of inputs.
// The kernel size is a pipeline constant (KH, KW), so the taps unroll; a tap outside the input
// reads a clamped address and adds zero.
//
// Composed after common/depthwise_params.wgsl.

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;

fn activate4(v: vec4<f32>) -> vec4<f32> {
    switch params.act {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return v / (vec4<f32>(1.0) + exp(-v)); }
        case 3u: { return clamp(v, vec4<f32>(0.0), vec4<f32>(6.0)); }
        default: { return v; }
    }
}

// Input vec4 at (row, column ix) of channel group c, and whether it lies inside.
fn tap(row: u32, ix: i32, c4: u32, c: u32) -> vec4<f32> {
    return x[(row + u32(clamp(ix, 0, i32(params.w) - 1))) * c4 + c];
}

@compute @workgroup_size(64, 1, 1)
fn depthwise_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * 64u + gid.x;
    let c4 = params.c / 4u;
    let wo2 = (params.wo + 1u) / 2u;
    if i >= params.batch * params.ho * wo2 * c4 {
        return;
    }
    let c = i % c4;
    let p = i / c4;
    let ox = (p % wo2) * 2u;
    let oy = (p / wo2) % params.ho;
    let b = p / (wo2 * params.ho);
    var s0 = vec4<f32>(0.0);
    if params.has_bias != 0u {
        s0 = bias[c];
    }
    var s1 = s0;
    let y0 = i32(oy * STRIDE) - i32(params.pad_top);
    let x0 = i32(ox * STRIDE) - i32(params.pad_left);
    let w = i32(params.w);
    for (var ky = 0u; ky < KH; ky++) {
        let iy = y0 + i32(ky);
        let row = (b * params.h + u32(clamp(iy, 0, i32(params.h) - 1))) * params.w;
        let in_y = iy >= 0 && iy < i32(params.h);
        for (var kx = 0u; kx < KW; kx++) {
            let wv = wt[(ky * KW + kx) * c4 + c];
            let ia = x0 + i32(kx);
            let ib = ia + i32(STRIDE);
            s0 += select(vec4<f32>(0.0), tap(row, ia, c4, c) * wv, in_y && ia >= 0 && ia < w);
            s1 += select(vec4<f32>(0.0), tap(row, ib, c4, c) * wv, in_y && ib >= 0 && ib < w);
        }
    }
    let o = ((b * params.ho + oy) * params.wo + ox) * c4 + c;
    y[o] = activate4(s0);
    if ox + 1u < params.wo {
        y[o + c4] = activate4(s1);
    }
}
