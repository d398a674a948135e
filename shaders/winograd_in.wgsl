// Winograd F(2x2, 3x3) input transform (Lavin and Gray 2016, "Fast algorithms for convolutional
// neural networks"): for a 3x3 convolution with stride 1 and padding 1, every 2 x 2 block of
// output pixels (a tile) reads a 4 x 4 patch d of the input, and V = B^T d B, with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
// x (B, H, W, C) NHWC -> V (16, tiles, C): V[4i + j] is the tile-by-channel matrix of element
// (i, j) of every tile's transform; the 16 matrices are then multiplied by the transformed
// weights U (16, Cout, C) (batched matmul) and winograd_out.wgsl finishes. Patches reach one
// pixel above and left of the tile (the padding) and read zeros outside the image.
// One invocation per (tile, 4 channels); the same kernel serves CPU adapters and GPUs (it has
// no reuse for workgroup memory to exploit).
//
// Composed after common/winograd_params.wgsl (host/src/ops/winograd.rs; Params, Q, flat).

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> v: array<vec4<f32>>;

// Input pixel (iy, ix) of image `b` (first row b * h), channels 4c .. 4c + 4; zero outside.
// No branch: the load reads pixel 0 and is scaled by 0 there (on lavapipe every load is
// already a loop over the lanes, and a branch around it costs more than the load).
fn px(row0: u32, iy: i32, ix: i32, c: u32) -> vec4<f32> {
    let inside = iy >= 0 && ix >= 0 && iy < i32(params.h) && ix < i32(params.w);
    let i = select(0u, ((row0 + u32(iy)) * params.w + u32(ix)) * params.c4 + c, inside);
    return x[i] * select(0.0, 1.0, inside);
}

// B^T p: one row of the patch, transformed along x.
fn row(row0: u32, iy: i32, x0: i32, c: u32) -> Q {
    let d0 = px(row0, iy, x0, c);
    let d1 = px(row0, iy, x0 + 1, c);
    let d2 = px(row0, iy, x0 + 2, c);
    let d3 = px(row0, iy, x0 + 3, c);
    return Q(d0 - d2, d1 + d2, d2 - d1, d1 - d3);
}

fn put(i: u32, t: u32, c: u32, q: Q) {
    let stride = params.tiles * params.c4;
    let base = (4u * i * params.tiles + t) * params.c4 + c;
    v[base] = q.a;
    v[base + stride] = q.b;
    v[base + 2u * stride] = q.c;
    v[base + 3u * stride] = q.d;
}

@compute @workgroup_size(64, 1, 1)
fn winograd_in(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = flat(gid, groups);
    if idx >= params.tiles * params.c4 {
        return;
    }
    let c = idx % params.c4;
    let t = idx / params.c4;
    let tx = t % params.tw;
    let ty = params.ty0 + (t / params.tw) % params.th;
    let row0 = (t / (params.tw * params.th)) * params.h;
    let y0 = i32(2u * ty) - 1;
    let x0 = i32(2u * tx) - 1;
    let h0 = row(row0, y0, x0, c);
    let h1 = row(row0, y0 + 1, x0, c);
    let h2 = row(row0, y0 + 2, x0, c);
    let h3 = row(row0, y0 + 3, x0, c);
    // B^T along y: rows 0..3 of V.
    put(0u, t, c, Q(h0.a - h2.a, h0.b - h2.b, h0.c - h2.c, h0.d - h2.d));
    put(1u, t, c, Q(h1.a + h2.a, h1.b + h2.b, h1.c + h2.c, h1.d + h2.d));
    put(2u, t, c, Q(h2.a - h1.a, h2.b - h1.b, h2.c - h1.c, h2.d - h1.d));
    put(3u, t, c, Q(h1.a - h3.a, h1.b - h3.b, h1.c - h3.c, h1.d - h3.d));
}
