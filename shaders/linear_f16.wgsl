// linear_f16: linear.wgsl's workgroup-tiled kernel for adapters with SHADER_F16, taking f16
// weights (W_F16 in linear.wgsl) as WGSL f16: each weight is one 16-bit load and a
// conversion, where linear.wgsl unpacks a u32 and picks a half (unpack2x16float works on any
// adapter, so that path stays for those without the feature). The weight tile is kept in
// workgroup memory as f16 (half the space of linear.wgsl's); products and sums are f32.
// Same Params and bindings as linear.wgsl, w_offset in elements.
//
// Composed after common/enable_f16.wgsl, common/linear_params.wgsl (host/src/ops; Params, params and shared helpers are there).

override TRANS_B: bool = true;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<f16>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const T: u32 = 16u;
var<workgroup> xs: array<array<f32, 16>, 16>;
var<workgroup> ws: array<array<f16, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn linear_tiled_f16(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = wid.x * T + lid.x;
    let m = wid.y * T + lid.y;
    let b = wid.z;
    let xb = b * params.x_batch;
    let wb = b * params.w_batch + params.w_offset;
    var acc = 0.0;
    for (var k0 = 0u; k0 < params.k; k0 += T) {
        // x tile: row m, column k0 + lid.x; W tile: column n, row k0 + lid.y.
        let kx = k0 + lid.x;
        let ky = k0 + lid.y;
        let xi = xb + min(m, params.m - 1u) * params.k + min(kx, params.k - 1u);
        xs[lid.y][lid.x] = select(0.0, x[xi >> 2u][xi & 3u], m < params.m && kx < params.k);
        let nc = min(n, params.n - 1u);
        let kc = min(ky, params.k - 1u);
        var wi = wb + kc * params.n + nc;
        if TRANS_B {
            wi = wb + nc * params.k + kc;
        }
        ws[lid.y][lid.x] = select(0.0h, w[wi], n < params.n && ky < params.k);
        workgroupBarrier();
        for (var kk = 0u; kk < T; kk++) {
            acc = fma(xs[lid.y][kk], f32(ws[kk][lid.x]), acc);
        }
        workgroupBarrier();
    }
    if m < params.m && n < params.n {
        var out = acc;
        if params.has_bias == 1u {
            out += bias[n + params.n_offset];
        }
        y[b * params.y_batch + m * params.n_total + n + params.n_offset] = out;
    }
}
