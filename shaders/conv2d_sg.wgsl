// conv_sg: the CPU-adapter variant of conv2d.wgsl (same Params and bindings) for adapters whose
// subgroups are exactly the 8 lanes of a workgroup (lavapipe on AVX2). Needs the SUBGROUP and
// SHADER_INT64 features, so it lives in its own file: conv2d.wgsl must compile without them.
//
// As in linear_sg.wgsl: lavapipe loads storage buffers one lane at a time, so instead of all
// lanes reading the same input pixels, each lane reads its own and subgroupBroadcast shares
// them; buffers are read as u64 (64 bits per lane per step of lavapipe's load loop, half the
// steps of 32-bit loads). A workgroup computes 32 output pixels x 32 output channels: lane l
// owns channels n0 .. n0 + 4 (weights (Cout, kh, kw, Cin) read as vec4 along Cin) and loads
// pixels m0 + l, m0 + 8 + l, m0 + 16 + l, m0 + 24 + l. Needs Cin % 4 == 0.
//
// Composed after common/conv2d_params.wgsl, common/u64.wgsl, common/sg_operands.wgsl (host/src/ops; Params, params and shared helpers are there).

// The kernel size as pipeline constants (params.kh and params.kw must match): the tap loops
// then have constant trip counts and are unrolled.
override KH: u32 = 3u;
override KW: u32 = 3u;

@group(0) @binding(0) var<storage, read> x: array<vec2<u64>>;
@group(0) @binding(1) var<storage, read> w: array<u64>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
// With RES (a pipeline constant, so that convs without a residual carry no code for it): the
// residual, read as vec4 along Cout (the host asks Cout % 4 == 0 for it).
override RES: bool = false;
@group(0) @binding(3) var<storage, read> res: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Pixels i0 .. i0 + 8 of the block (accumulators r0 .. r7): lane l's pixel (xl) goes to every
// lane in turn.
fn px8(r0: ptr<function, vec4<f32>>, r1: ptr<function, vec4<f32>>, r2: ptr<function, vec4<f32>>, r3: ptr<function, vec4<f32>>,
       r4: ptr<function, vec4<f32>>, r5: ptr<function, vec4<f32>>, r6: ptr<function, vec4<f32>>, r7: ptr<function, vec4<f32>>,
       xl: vec4<f32>, c0: vec4<f32>, c1: vec4<f32>, c2: vec4<f32>, c3: vec4<f32>) {
    *r0 = mac4(*r0, subgroupBroadcast(xl, 0u), c0, c1, c2, c3);
    *r1 = mac4(*r1, subgroupBroadcast(xl, 1u), c0, c1, c2, c3);
    *r2 = mac4(*r2, subgroupBroadcast(xl, 2u), c0, c1, c2, c3);
    *r3 = mac4(*r3, subgroupBroadcast(xl, 3u), c0, c1, c2, c3);
    *r4 = mac4(*r4, subgroupBroadcast(xl, 4u), c0, c1, c2, c3);
    *r5 = mac4(*r5, subgroupBroadcast(xl, 5u), c0, c1, c2, c3);
    *r6 = mac4(*r6, subgroupBroadcast(xl, 6u), c0, c1, c2, c3);
    *r7 = mac4(*r7, subgroupBroadcast(xl, 7u), c0, c1, c2, c3);
}

// Output pixels m0 .. m0 + 8 of the block; bv: the bias of the lane's channels.
fn store8(m0: u32, rows: u32, n0: u32, bv: vec4<f32>, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>, v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>) {
    store4(m0, rows, n0, v0 + bv);
    store4(m0 + 1u, rows, n0, v1 + bv);
    store4(m0 + 2u, rows, n0, v2 + bv);
    store4(m0 + 3u, rows, n0, v3 + bv);
    store4(m0 + 4u, rows, n0, v4 + bv);
    store4(m0 + 5u, rows, n0, v5 + bv);
    store4(m0 + 6u, rows, n0, v6 + bv);
    store4(m0 + 7u, rows, n0, v7 + bv);
}

// Output pixel m, channels n0 .. n0 + 4 (those that exist): the residual (RES), activation,
// store.
fn store4(m: u32, rows: u32, n0: u32, v: vec4<f32>) {
    if m >= rows {
        return;
    }
    var s = v;
    if RES {
        s += res[(m * params.cout + n0) / 4u];
    }
    for (var j = 0u; j < 4u; j++) {
        let n = n0 + j;
        if n < params.cout {
            y[m * params.cout + n] = activate(s[j]);
        }
    }
}

const TM: u32 = 32u;   // output pixels per workgroup (4 per lane, shared)
const TN: u32 = 4u;    // output channels per lane

@compute @workgroup_size(8, 1, 1)
fn conv_sg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let n0 = gid.x * TN;
    let m0 = (wid.z * nw.y + wid.y) * TM;   // blocks of pixels over y and z (65,535 per dimension)
    let rows = params.batch * params.ho * params.wo;
    let c4 = params.cin / 4u;
    let k4 = KH * KW * c4;
    // No early return: subgroupBroadcast needs every lane. Channels and pixels past the end
    // read the last one and are not stored.
    let wr0 = min(n0, params.cout - 1u) * k4;
    let wr1 = min(n0 + 1u, params.cout - 1u) * k4;
    let wr2 = min(n0 + 2u, params.cout - 1u) * k4;
    let wr3 = min(n0 + 3u, params.cout - 1u) * k4;
    // a<i>: pixel m0 + i, channels n0 .. n0 + 4. Separate variables, not an array (lavapipe
    // keeps arrays in per-lane memory).
    var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0); var a9 = vec4<f32>(0.0); var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0); var a14 = vec4<f32>(0.0); var a15 = vec4<f32>(0.0);
    var a16 = vec4<f32>(0.0); var a17 = vec4<f32>(0.0); var a18 = vec4<f32>(0.0); var a19 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0); var a22 = vec4<f32>(0.0); var a23 = vec4<f32>(0.0);
    var a24 = vec4<f32>(0.0); var a25 = vec4<f32>(0.0); var a26 = vec4<f32>(0.0); var a27 = vec4<f32>(0.0);
    var a28 = vec4<f32>(0.0); var a29 = vec4<f32>(0.0); var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0);
    // This lane's 4 pixels: their top-left input corner (divisions once, not per tap: integer
    // division is scalar on a CPU).
    let o0 = corner(m0 + lane, rows);
    let o1 = corner(m0 + 8u + lane, rows);
    let o2 = corner(m0 + 16u + lane, rows);
    let o3 = corner(m0 + 24u + lane, rows);
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            // Where the 4 pixels read this tap (y = 0.0: padding, reads 0).
            let p0 = tap_source(o0, ky, kx, c4);
            let p1 = tap_source(o1, ky, kx, c4);
            let p2 = tap_source(o2, ky, kx, c4);
            let p3 = tap_source(o3, ky, kx, c4);
            let tap = (ky * KW + kx) * c4;
            for (var c = 0u; c < c4; c++) {
                // Every load before any arithmetic: lavapipe turns each load into a branchy
                // loop over the lanes, and accumulators live across those branches get spilled.
                let w0 = w4(wr0 + tap + c);
                let w1 = w4(wr1 + tap + c);
                let w2 = w4(wr2 + tap + c);
                let w3 = w4(wr3 + tap + c);
                let x0 = x4(p0.x + c) * bitcast<f32>(p0.y);
                let x1 = x4(p1.x + c) * bitcast<f32>(p1.y);
                let x2 = x4(p2.x + c) * bitcast<f32>(p2.y);
                let x3 = x4(p3.x + c) * bitcast<f32>(p3.y);
                let c0 = vec4<f32>(w0.x, w1.x, w2.x, w3.x);
                let c1 = vec4<f32>(w0.y, w1.y, w2.y, w3.y);
                let c2 = vec4<f32>(w0.z, w1.z, w2.z, w3.z);
                let c3 = vec4<f32>(w0.w, w1.w, w2.w, w3.w);
                px8(&a0, &a1, &a2, &a3, &a4, &a5, &a6, &a7, x0, c0, c1, c2, c3);
                px8(&a8, &a9, &a10, &a11, &a12, &a13, &a14, &a15, x1, c0, c1, c2, c3);
                px8(&a16, &a17, &a18, &a19, &a20, &a21, &a22, &a23, x2, c0, c1, c2, c3);
                px8(&a24, &a25, &a26, &a27, &a28, &a29, &a30, &a31, x3, c0, c1, c2, c3);
            }
        }
    }
    // The bias of the lane's 4 channels, loaded once.
    var bv = vec4<f32>(0.0);
    if params.has_bias == 1u {
        let last = params.cout - 1u;
        bv = vec4<f32>(bias[min(n0, last)], bias[min(n0 + 1u, last)], bias[min(n0 + 2u, last)], bias[min(n0 + 3u, last)]);
    }
    store8(m0, rows, n0, bv, a0, a1, a2, a3, a4, a5, a6, a7);
    store8(m0 + 8u, rows, n0, bv, a8, a9, a10, a11, a12, a13, a14, a15);
    store8(m0 + 16u, rows, n0, bv, a16, a17, a18, a19, a20, a21, a22, a23);
    store8(m0 + 24u, rows, n0, bv, a24, a25, a26, a27, a28, a29, a30, a31);
}

// For output pixel m (clamped to the last): (first input row of its batch element, input
// row and column of its top-left tap; negative in the padding).
fn corner(m_in: u32, rows: u32) -> vec3<i32> {
    let m = min(m_in, rows - 1u);
    let ox = m % params.wo;
    let oy = (m / params.wo) % params.ho;
    let b = m / (params.wo * params.ho);
    return vec3<i32>(i32(b * params.h), i32(oy * params.stride) - i32(params.pad_top), i32(ox * params.stride) - i32(params.pad_left));
}

// For a pixel's corner and tap (ky, kx): x (the vec4 index of the input pixel's channels; 0 in
// the padding) and y (the bits of 1.0, or of 0.0 in the padding).
fn tap_source(o: vec3<i32>, ky: u32, kx: u32, c4: u32) -> vec2<u32> {
    let iy = o.y + i32(ky);
    let ix = o.z + i32(kx);
    let inside = iy >= 0 && ix >= 0 && iy < i32(params.h) && ix < i32(params.w);
    let base = select(0u, (u32(o.x + iy) * params.w + u32(ix)) * c4, inside);
    return vec2<u32>(base, bitcast<u32>(select(0.0, 1.0, inside)));
}
