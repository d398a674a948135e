// conv2d on NHWC activations: y (B, Ho, Wo, Cout) = act(conv(x (B, H, W, Cin), W) + bias
// [+ res]), with the optional residual res (B, Ho, Wo, Cout) (params.has_res).
// W is stored (Cout, kh, kw, Cin) — repacked from PyTorch's (Cout, Cin, kh, kw) at load — so
// that the convolution is a matrix product with K = kh * kw * Cin read as vec4 along Cin
// (implicit im2col). f32 or f16 weights (two halves per u32). Padding is given as top and
// left; bottom and right follow from the output size (the VAE's (0,1,0,1) is top 0, left 0).
//
//   conv_cpu   — CPU adapters, Cin % 4 == 0: a SIMD lane owns 8 output channels of 16 output
//                pixels; the pixels are the same for the whole workgroup.
//   conv_tiled — GPUs, and any Cin: 16 x 16 tiles in workgroup memory.
//
// Variants needing adapter features live in their own files (this one must compile without
// them): conv2d_sg.wgsl (SUBGROUP, SHADER_INT64; CPU adapters) and conv2d_f16.wgsl (SHADER_F16;
// the tiled kernel reading f16 weights as WGSL f16).
//
// Composed after common/conv2d_params.wgsl, common/packed.wgsl, common/im2col.wgsl (host/src/ops; Params, params and shared helpers are there).

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> res: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn store(m: u32, n: u32, v: f32) {
    var out = v;
    if params.has_bias == 1u {
        out += bias[n];
    }
    let i = m * params.cout + n;
    if params.has_res == 1u {
        out += res[i];
    }
    y[i] = activate(out);
}

const TM: u32 = 8u;
const TN: u32 = 8u;

@compute @workgroup_size(8, 1, 1)
fn conv_cpu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n0 = gid.x * TN;
    let m0 = (wid.z * nw.y + wid.y) * TM;   // blocks of pixels over y and z (65,535 per dimension)
    let rows = params.batch * params.ho * params.wo;
    if n0 >= params.cout {
        return;
    }
    let c4 = params.cin / 4u;
    let k4 = params.kh * params.kw * c4;
    var wrow: array<u32, 8>;
    for (var j = 0u; j < TN; j++) {
        wrow[j] = min(n0 + j, params.cout - 1u) * k4;
    }
    var acc: array<vec4<f32>, 32>;
    for (var ky = 0u; ky < params.kh; ky++) {
        for (var kx = 0u; kx < params.kw; kx++) {
            // Where each of the 16 output pixels reads this tap (OUTSIDE: padding, reads 0).
            var base: array<u32, 16>;
            var keep: array<f32, 16>;   // 0 where the tap falls in the padding
            for (var i = 0u; i < TM; i++) {
                let m = min(m0 + i, rows - 1u);
                let ox = m % params.wo;
                let oy = (m / params.wo) % params.ho;
                let b = m / (params.wo * params.ho);
                let iy = i32(oy * params.stride + ky) - i32(params.pad_top);
                let ix = i32(ox * params.stride + kx) - i32(params.pad_left);
                let inside = iy >= 0 && ix >= 0 && iy < i32(params.h) && ix < i32(params.w);
                base[i] = select(0u, ((b * params.h + u32(iy)) * params.w + u32(ix)) * c4, inside);
                keep[i] = select(0.0, 1.0, inside);
            }
            let tap = (ky * params.kw + kx) * c4;
            for (var c = 0u; c < c4; c++) {
                var wv: array<vec4<f32>, 8>;
                for (var j = 0u; j < TN; j++) {
                    wv[j] = w4(wrow[j] + tap + c);
                }
                for (var i = 0u; i < TM; i++) {
                    // No branch: the SIMD lanes share the pixel, but the compiler cannot know.
                    let xv = x[base[i] + c] * keep[i];
                    acc[2u * i] += vec4<f32>(dot(xv, wv[0]), dot(xv, wv[1]), dot(xv, wv[2]), dot(xv, wv[3]));
                    acc[2u * i + 1u] += vec4<f32>(dot(xv, wv[4]), dot(xv, wv[5]), dot(xv, wv[6]), dot(xv, wv[7]));
                }
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        if m0 + i < rows {
            for (var j = 0u; j < TN; j++) {
                if n0 + j < params.cout {
                    store(m0 + i, n0 + j, acc[2u * i + j / 4u][j % 4u]);
                }
            }
        }
    }
}

const T: u32 = 16u;
var<workgroup> xs: array<array<f32, 16>, 16>;
var<workgroup> ws: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn conv_tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = wid.x * T + lid.x;
    let m = (wid.z * nw.y + wid.y) * T + lid.y;
    let rows = params.batch * params.ho * params.wo;
    let kk_total = params.kh * params.kw * params.cin;
    var acc = 0.0;
    for (var k0 = 0u; k0 < kk_total; k0 += T) {
        let kx = k0 + lid.x;
        let ky = k0 + lid.y;
        var xv = 0.0;
        if m < rows && kx < kk_total {
            xv = im2col(m, kx);
        }
        xs[lid.y][lid.x] = xv;
        var wv = 0.0;
        if n < params.cout && ky < kk_total {
            wv = w_at(n * kk_total + ky);
        }
        ws[lid.y][lid.x] = wv;
        workgroupBarrier();
        for (var t = 0u; t < T; t++) {
            acc = fma(xs[lid.y][t], ws[t][lid.x], acc);
        }
        workgroupBarrier();
    }
    if m < rows && n < params.cout {
        store(m, n, acc);
    }
}
