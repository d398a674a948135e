// Layout ops on NHWC tensors.
//   upsample2x: nearest-neighbour 2x, x (B, H, W, C) -> y (B, 2H, 2W, C)
//   concat:     channel concat, a (P, Ca) ++ b (P, Cb) -> y (P, Ca + Cb) for P pixels
//
// Composed after common/flat4.wgsl (host/src/ops; Params, params and shared helpers are there).

struct Params {
    n: u32,      // elements of y
    h: u32,      // upsample: input height
    w: u32,      // upsample: input width
    c: u32,      // upsample: channels; concat: Ca
    cb: u32,     // concat: Cb
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn upsample2x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let c = i % params.c;
        let p = i / params.c;
        let ox = p % (2u * params.w);
        let oy = (p / (2u * params.w)) % (2u * params.h);
        let bb = p / (4u * params.w * params.h);
        y[i] = a[((bb * params.h + oy / 2u) * params.w + ox / 2u) * params.c + c];
    }
}

@compute @workgroup_size(64, 1, 1)
fn concat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    let ct = params.c + params.cb;
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let c = i % ct;
        let p = i / ct;
        if c < params.c {
            y[i] = a[p * params.c + c];
        } else {
            y[i] = b[p * params.cb + c - params.c];
        }
    }
}
