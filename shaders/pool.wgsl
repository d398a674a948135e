// Pooling on NHWC activations, x (B, H, W, C) -> y (B, Ho, Wo, C):
//   max_pool:      max over the k x k window at (oy*s - top, ox*s - left), padding ignored
//                  (PyTorch's -inf padding; every window holds at least one input)
//   adaptive_avg:  mean over rows floor(oy*H/Ho) .. ceil((oy+1)*H/Ho) and the same for columns
//                  (torchvision's AdaptiveAvgPool2d; Ho = Wo = 1 is the global mean)
// One invocation per four output elements.
//
// Composed after common/flat4.wgsl (host/src/ops/pool.rs mirrors Params).

struct Params {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    ho: u32,
    wo: u32,
    k: u32,          // max_pool: window side
    stride: u32,     // max_pool
    pad_top: u32,    // max_pool
    pad_left: u32,   // max_pool
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    let n = params.batch * params.ho * params.wo * params.c;
    for (var i = i0; i < min(i0 + 4u, n); i++) {
        let at = nhwc_at(i, params.ho, params.wo, params.c);
        let b = at.x;
        let oy = at.y;
        let ox = at.z;
        let c = at.w;
        var m = -3.4028235e38;
        for (var ky = 0u; ky < params.k; ky++) {
            let iy = i32(oy * params.stride + ky) - i32(params.pad_top);
            if iy < 0 || iy >= i32(params.h) {
                continue;
            }
            for (var kx = 0u; kx < params.k; kx++) {
                let ix = i32(ox * params.stride + kx) - i32(params.pad_left);
                if ix < 0 || ix >= i32(params.w) {
                    continue;
                }
                m = max(m, x[((b * params.h + u32(iy)) * params.w + u32(ix)) * params.c + c]);
            }
        }
        y[i] = m;
    }
}

@compute @workgroup_size(64, 1, 1)
fn adaptive_avg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    let n = params.batch * params.ho * params.wo * params.c;
    for (var i = i0; i < min(i0 + 4u, n); i++) {
        let at = nhwc_at(i, params.ho, params.wo, params.c);
        let b = at.x;
        let oy = at.y;
        let ox = at.z;
        let c = at.w;
        let y0 = oy * params.h / params.ho;
        let y1 = ((oy + 1u) * params.h + params.ho - 1u) / params.ho;
        let x0 = ox * params.w / params.wo;
        let x1 = ((ox + 1u) * params.w + params.wo - 1u) / params.wo;
        var s = 0.0;
        for (var iy = y0; iy < y1; iy++) {
            for (var ix = x0; ix < x1; ix++) {
                s += x[((b * params.h + iy) * params.w + ix) * params.c + c];
            }
        }
        y[i] = s / f32((y1 - y0) * (x1 - x0));
    }
}
