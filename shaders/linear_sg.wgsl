// linear_sg: the CPU-adapter variant of linear.wgsl (same Params and bindings) for adapters
// whose subgroups are exactly the 8 lanes of a workgroup (lavapipe on AVX2). Needs the
// SUBGROUP and SHADER_INT64 features, so it lives in its own file: linear.wgsl must compile
// without them.
//
// Why: lavapipe (Mesa <= 25.0) loads a storage buffer one lane at a time, with a bounds check
// and a branch per lane and per 32-bit word, even when every lane reads the same address. The
// kernel in linear.wgsl has all 8 lanes read the same rows of x, paying 8 loads per value.
// Here each lane reads a different row of x and subgroupBroadcast (an extract and a splat
// on a CPU) shares it, so every loaded word is used by all 8 lanes. Buffers are read as u64:
// that per-lane loop then moves 64 bits per lane and step instead of 32, half the steps for
// the same data (measured 7-22% faster than 32-bit loads on lavapipe).
//
// A workgroup computes 32 rows x 32 columns: lane l owns columns n0 .. n0 + 4 (weights read as
// vec4 along K, its own rows of W) and loads rows m0 + l, m0 + 8 + l, m0 + 16 + l, m0 + 24 + l
// of x. Needs K % 4 == 0 and TRANS_B (W as (N, K)). Results are stored two at a time as u64
// too (the stores are per-lane loops as well; 10% of a 4096x320x320 product with 32-bit
// stores): needs an even row length, and even n_offset and y_batch.
//
// Composed after common/linear_params.wgsl, common/u64.wgsl, common/sg_operands.wgsl (host/src/ops; Params, params and shared helpers are there).

@group(0) @binding(0) var<storage, read> x: array<vec2<u64>>;
@group(0) @binding(1) var<storage, read> w: array<u64>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<u64>;

const TM: u32 = 32u;   // rows per workgroup (4 per lane, shared)
const TN: u32 = 4u;    // columns per lane

@compute @workgroup_size(8, 1, 1)
fn linear_sg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let n0 = gid.x * TN;
    let m0 = wid.y * TM;
    let b = wid.z;
    let k4 = params.k / 4u;
    // No early return: subgroupBroadcast needs every lane. Columns and rows past the end
    // read the last one and are not stored.
    let wb = params.w_offset + b * params.w_batch / 4u;
    let wr0 = wb + min(n0, params.n - 1u) * k4;
    let wr1 = wb + min(n0 + 1u, params.n - 1u) * k4;
    let wr2 = wb + min(n0 + 2u, params.n - 1u) * k4;
    let wr3 = wb + min(n0 + 3u, params.n - 1u) * k4;
    let xb = (b * params.x_batch) / 4u;
    let xr0 = xb + min(m0 + lane, params.m - 1u) * k4;
    let xr1 = xb + min(m0 + 8u + lane, params.m - 1u) * k4;
    let xr2 = xb + min(m0 + 16u + lane, params.m - 1u) * k4;
    let xr3 = xb + min(m0 + 24u + lane, params.m - 1u) * k4;
    // a<i>: row m0 + i, columns n0 .. n0 + 4. Separate variables rather than an array:
    // lavapipe keeps an array in per-lane memory (2x slower here), even when every index is
    // a constant after inlining.
    var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0); var a9 = vec4<f32>(0.0); var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0); var a14 = vec4<f32>(0.0); var a15 = vec4<f32>(0.0);
    var a16 = vec4<f32>(0.0); var a17 = vec4<f32>(0.0); var a18 = vec4<f32>(0.0); var a19 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0); var a22 = vec4<f32>(0.0); var a23 = vec4<f32>(0.0);
    var a24 = vec4<f32>(0.0); var a25 = vec4<f32>(0.0); var a26 = vec4<f32>(0.0); var a27 = vec4<f32>(0.0);
    var a28 = vec4<f32>(0.0); var a29 = vec4<f32>(0.0); var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0);
    for (var k = 0u; k < k4; k++) {
        let w0 = w4(wr0 + k);
        let w1 = w4(wr1 + k);
        let w2 = w4(wr2 + k);
        let w3 = w4(wr3 + k);
        let c0 = vec4<f32>(w0.x, w1.x, w2.x, w3.x);
        let c1 = vec4<f32>(w0.y, w1.y, w2.y, w3.y);
        let c2 = vec4<f32>(w0.z, w1.z, w2.z, w3.z);
        let c3 = vec4<f32>(w0.w, w1.w, w2.w, w3.w);
        // Every load before any arithmetic: lavapipe turns each load into a branchy loop
        // over the lanes, and accumulators live across those branches get spilled.
        let x0 = x4(xr0 + k);
        let x1 = x4(xr1 + k);
        let x2 = x4(xr2 + k);
        let x3 = x4(xr3 + k);
        rows8(&a0, &a1, &a2, &a3, &a4, &a5, &a6, &a7, x0, c0, c1, c2, c3);
        rows8(&a8, &a9, &a10, &a11, &a12, &a13, &a14, &a15, x1, c0, c1, c2, c3);
        rows8(&a16, &a17, &a18, &a19, &a20, &a21, &a22, &a23, x2, c0, c1, c2, c3);
        rows8(&a24, &a25, &a26, &a27, &a28, &a29, &a30, &a31, x3, c0, c1, c2, c3);
    }
    // The bias of the lane's 4 columns, loaded once.
    var bv = vec4<f32>(0.0);
    if params.has_bias == 1u {
        let last = params.n_offset + params.n - 1u;
        let nb = n0 + params.n_offset;
        bv = vec4<f32>(bias[min(nb, last)], bias[min(nb + 1u, last)], bias[min(nb + 2u, last)], bias[min(nb + 3u, last)]);
    }
    store8(b, m0, n0, bv, a0, a1, a2, a3, a4, a5, a6, a7);
    store8(b, m0 + 8u, n0, bv, a8, a9, a10, a11, a12, a13, a14, a15);
    store8(b, m0 + 16u, n0, bv, a16, a17, a18, a19, a20, a21, a22, a23);
    store8(b, m0 + 24u, n0, bv, a24, a25, a26, a27, a28, a29, a30, a31);
}

// Rows i0 .. i0 + 8 of the block (accumulators r0 .. r7): lane l's row of x (xl) goes to
// every lane in turn.
fn rows8(r0: ptr<function, vec4<f32>>, r1: ptr<function, vec4<f32>>, r2: ptr<function, vec4<f32>>, r3: ptr<function, vec4<f32>>,
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

// Rows m0 .. m0 + 8 of the block.
fn store8(b: u32, m0: u32, n0: u32, bv: vec4<f32>, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>, v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>) {
    store4(b, m0, n0, v0 + bv);
    store4(b, m0 + 1u, n0, v1 + bv);
    store4(b, m0 + 2u, n0, v2 + bv);
    store4(b, m0 + 3u, n0, v3 + bv);
    store4(b, m0 + 4u, n0, v4 + bv);
    store4(b, m0 + 5u, n0, v5 + bv);
    store4(b, m0 + 6u, n0, v6 + bv);
    store4(b, m0 + 7u, n0, v7 + bv);
}

// The u64 holding the f32 values lo and hi (lo in the low half, as in memory).
fn pack2(lo: f32, hi: f32) -> u64 {
    return u64(bitcast<u32>(lo)) | (u64(bitcast<u32>(hi)) << 32u);
}

// Row m, columns n0 .. n0 + 4: the pairs that exist (the row length is even, so a pair is
// wholly in or out).
fn store4(b: u32, m: u32, n0: u32, v: vec4<f32>) {
    if m >= params.m {
        return;
    }
    let e = (b * params.y_batch + m * params.n_total + n0 + params.n_offset) / 2u;
    if n0 < params.n {
        y[e] = pack2(v.x, v.y);
    }
    if n0 + 2u < params.n {
        y[e + 1u] = pack2(v.z, v.w);
    }
}
