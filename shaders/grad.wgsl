// Input gradients (backward passes, weights frozen) of the elementwise and layout ops, four
// elements per invocation. `a` is the output gradient, `b` what the backward needs of the
// forward (its output or input), `y` the input gradient.
//   act_back:        y = a * act'(b), b = the forward's output: ReLU (b > 0), ReLU6 (0 < b < 6)
//   tanh_clamp_back: y = a * (1 - tanh(b / s)^2), b = the forward's input (TAESD's clamp)
//   upsample2x_back: a (B, 2H, 2W, C) -> y (B, H, W, C), the sum over each 2x2
//   mean_back:       a (B, C) -> y (B, H, W, C) = a[b, c] * scale (scale = 1 / (H W))
//   dilate2x:        a (B, H, W, C) -> y (B, ho, wo, C), a[b, i, j] at (2i, 2j), zeros between
//                    (a stride-2 convolution's output gradient, before the stride-1 transpose)
//   max_pool_back:   a (B, ho, wo, C), b the forward's input (B, H, W, C) -> y (B, H, W, C):
//                    each window's gradient to its first maximum (PyTorch's tie rule)
//   adaptive_avg_back: a (B, ho, wo, C) -> y (B, H, W, C): each window's gradient spread
//                    evenly over it (torchvision's windows, as pool.wgsl)
//
// Composed after common/flat4.wgsl (host/src/ops/grad.rs; Params, params and shared helpers).

struct Params {
    n: u32,      // elements of y
    h: u32,      // input-gradient height (upsample, mean); source height (dilate)
    w: u32,      // input-gradient width (upsample, mean); source width (dilate)
    c: u32,      // channels
    ho: u32,     // dilate: output height
    wo: u32,     // dilate: output width
    act: u32,    // act_back: 1 ReLU, 3 ReLU6 (ops::Act), anything else passes a through
    scale: f32,  // tanh clamp bound; mean scale
    k: u32,      // max pool: window
    stride: u32, // max pool: stride
    pad: u32,    // max pool: padding (top and left)
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn act_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let v = b[i];
        var pass_ = true;
        switch params.act {
            case 1u: { pass_ = v > 0.0; }
            case 3u: { pass_ = v > 0.0 && v < 6.0; }
            default: {}
        }
        y[i] = select(0.0, a[i], pass_);
    }
}

@compute @workgroup_size(64, 1, 1)
fn tanh_clamp_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let t = tanh(b[i] / params.scale);
        y[i] = a[i] * (1.0 - t * t);
    }
}

@compute @workgroup_size(64, 1, 1)
fn upsample2x_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    let c = params.c;
    let w2 = 2u * params.w;
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let at = nhwc_at(i, params.h, params.w, c);
        let top = ((at.x * 2u * params.h + 2u * at.y) * w2 + 2u * at.z) * c + at.w;
        let bottom = top + w2 * c;
        y[i] = (a[top] + a[top + c]) + (a[bottom] + a[bottom + c]);
    }
}

@compute @workgroup_size(64, 1, 1)
fn mean_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let at = nhwc_at(i, params.h, params.w, params.c);
        y[i] = a[at.x * params.c + at.w] * params.scale;
    }
}

@compute @workgroup_size(64, 1, 1)
fn dilate2x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let at = nhwc_at(i, params.ho, params.wo, params.c);
        var v = 0.0;
        if at.y % 2u == 0u && at.z % 2u == 0u && at.y / 2u < params.h && at.z / 2u < params.w {
            v = a[((at.x * params.h + at.y / 2u) * params.w + at.z / 2u) * params.c + at.w];
        }
        y[i] = v;
    }
}

// The flat index in the forward's input of window (b, oy, ox, c)'s first maximum, or n if
// the window holds no input.
fn window_argmax(bb: u32, oy: u32, ox: u32, c: u32) -> u32 {
    var m = -3.4028235e38;
    var at = 0xffffffffu;
    for (var ky = 0u; ky < params.k; ky++) {
        let iy = i32(oy * params.stride + ky) - i32(params.pad);
        if iy < 0 || iy >= i32(params.h) {
            continue;
        }
        for (var kx = 0u; kx < params.k; kx++) {
            let ix = i32(ox * params.stride + kx) - i32(params.pad);
            if ix < 0 || ix >= i32(params.w) {
                continue;
            }
            let j = ((bb * params.h + u32(iy)) * params.w + u32(ix)) * params.c + c;
            if b[j] > m || at == 0xffffffffu {
                m = b[j];
                at = j;
            }
        }
    }
    return at;
}

@compute @workgroup_size(64, 1, 1)
fn max_pool_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    let s = i32(params.stride);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let at = nhwc_at(i, params.h, params.w, params.c);
        // Windows oy with oy s - pad <= iy < oy s - pad + k.
        let py = i32(at.y) + i32(params.pad);
        let px = i32(at.z) + i32(params.pad);
        let oy0 = max((py - i32(params.k) + s) / s, 0);
        let ox0 = max((px - i32(params.k) + s) / s, 0);
        let oy1 = min(py / s, i32(params.ho) - 1);
        let ox1 = min(px / s, i32(params.wo) - 1);
        var g = 0.0;
        for (var oy = oy0; oy <= oy1; oy++) {
            for (var ox = ox0; ox <= ox1; ox++) {
                if window_argmax(at.x, u32(oy), u32(ox), at.w) == i {
                    g += a[((at.x * params.ho + u32(oy)) * params.wo + u32(ox)) * params.c + at.w];
                }
            }
        }
        y[i] = g;
    }
}

@compute @workgroup_size(64, 1, 1)
fn adaptive_avg_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let at = nhwc_at(i, params.h, params.w, params.c);
        var g = 0.0;
        for (var oy = 0u; oy < params.ho; oy++) {
            let y0 = oy * params.h / params.ho;
            let y1 = ((oy + 1u) * params.h + params.ho - 1u) / params.ho;
            if at.y < y0 || at.y >= y1 {
                continue;
            }
            for (var ox = 0u; ox < params.wo; ox++) {
                let x0 = ox * params.w / params.wo;
                let x1 = ((ox + 1u) * params.w + params.wo - 1u) / params.wo;
                if at.z >= x0 && at.z < x1 {
                    g += a[((at.x * params.ho + oy) * params.wo + ox) * params.c + at.w] / f32((y1 - y0) * (x1 - x0));
                }
            }
        }
        y[i] = g;
    }
}
