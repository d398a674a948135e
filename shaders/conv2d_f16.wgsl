// conv_tiled_f16: conv2d.wgsl's workgroup-tiled kernel for adapters with SHADER_F16, taking
// f16 weights as WGSL f16 (one 16-bit load and a conversion each, where conv2d.wgsl unpacks a
// u32 and picks a half; that path stays for adapters without the feature). The weight tile is
// kept in workgroup memory as f16; products and sums are f32. Same Params and bindings as
// conv2d.wgsl: NHWC activations, weights (Cout, kh, kw, Cin), any Cin.
//
// Composed after common/enable_f16.wgsl, common/conv2d_params.wgsl, common/im2col.wgsl (host/src/ops; Params, params and shared helpers are there).

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<f16>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> res: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const T: u32 = 16u;
var<workgroup> xs: array<array<f32, 16>, 16>;
var<workgroup> ws: array<array<f16, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn conv_tiled_f16(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = wid.x * T + lid.x;
    let m = (wid.z * nw.y + wid.y) * T + lid.y;   // blocks of pixels over y and z
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
        var wv = 0.0h;
        if n < params.cout && ky < kk_total {
            wv = w[n * kk_total + ky];
        }
        ws[lid.y][lid.x] = wv;
        workgroupBarrier();
        for (var t = 0u; t < T; t++) {
            acc = fma(xs[lid.y][t], f32(ws[t][lid.x]), acc);
        }
        workgroupBarrier();
    }
    if m < rows && n < params.cout {
        var out = acc;
        if params.has_bias == 1u {
            out += bias[n];
        }
        let i = m * params.cout + n;
        if params.has_res == 1u {
            out += res[i];
        }
        y[i] = activate(out);
    }
}
