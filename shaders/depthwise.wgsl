// Depthwise conv2d on NHWC activations (one filter per channel, groups = C):
//   y (B, Ho, Wo, C) = act(sum over ky, kx of x[b, oy*s + ky - top, ox*s + kx - left, c] w[ky, kx, c] + bias[c])
// with zeros outside x (explicit top/left padding; bottom/right follow from Ho, Wo), weights
// (kh, kw, C). One invocation per four output elements (memory-bound: no tiles).
//
// Composed after common/depthwise_params.wgsl and common/flat4.wgsl.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn activate(v: f32) -> f32 {
    switch params.act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return v / (1.0 + exp(-v)); }
        case 3u: { return clamp(v, 0.0, 6.0); }
        default: { return v; }
    }
}

@compute @workgroup_size(64, 1, 1)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    let n = params.batch * params.ho * params.wo * params.c;
    for (var i = i0; i < min(i0 + 4u, n); i++) {
        let at = nhwc_at(i, params.ho, params.wo, params.c);
        let b = at.x;
        let oy = at.y;
        let ox = at.z;
        let c = at.w;
        var s = 0.0;
        if params.has_bias != 0u {
            s = bias[c];
        }
        for (var ky = 0u; ky < params.kh; ky++) {
            let iy = i32(oy * params.stride + ky) - i32(params.pad_top);
            if iy < 0 || iy >= i32(params.h) {
                continue;
            }
            for (var kx = 0u; kx < params.kw; kx++) {
                let ix = i32(ox * params.stride + kx) - i32(params.pad_left);
                if ix < 0 || ix >= i32(params.w) {
                    continue;
                }
                s += x[((b * params.h + u32(iy)) * params.w + u32(ix)) * params.c + c] * wt[(ky * params.kw + kx) * params.c + c];
            }
        }
        y[i] = activate(s);
    }
}
