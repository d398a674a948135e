// linear: y (B, M, N) = x (B, M, K) . W^T + bias, W (N, K) row-major as in torch.nn.Linear,
// f32 or f16 (two halves per u32, read with unpack2x16float: no SHADER_F16 needed).
// TRANS_B = false reads W as (B, K, N) instead: plain batched matmul.
//
//   linear_cpu   — CPU adapters (lavapipe); needs K % 4 == 0 and TRANS_B. A SIMD lane owns 8
//                  output columns of 16 rows; the 16 rows of x are the same for the whole
//                  workgroup and the lane's 8 weight rows are read as vec4 along K. No
//                  workgroup memory (it does not help on a CPU).
//   linear_tiled — GPUs, and any shape: 16 x 16 tiles of x and W in workgroup memory.
//
// Variants needing adapter features live in their own files (this one must compile without
// them): linear_sg.wgsl (SUBGROUP, SHADER_INT64; CPU adapters) and linear_f16.wgsl (SHADER_F16;
// the tiled kernel reading f16 weights as WGSL f16).
//
// Composed after common/linear_params.wgsl, common/packed.wgsl (host/src/ops; Params, params and shared helpers are there).

override TRANS_B: bool = true;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn store(b: u32, m: u32, n: u32, v: f32) {
    var out = v;
    if params.has_bias == 1u {
        out += bias[n + params.n_offset];
    }
    y[b * params.y_batch + m * params.n_total + n + params.n_offset] = out;
}

const TM: u32 = 8u;
const TN: u32 = 8u;

@compute @workgroup_size(8, 1, 1)
fn linear_cpu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let n0 = gid.x * TN;
    let m0 = wid.y * TM;
    let b = wid.z;
    if n0 >= params.n {
        return;
    }
    let k4 = params.k / 4u;
    // Rows and columns past the end read the last one (kept in range) and are not stored.
    var wrow: array<u32, 8>;
    for (var j = 0u; j < TN; j++) {
        wrow[j] = params.w_offset + b * params.w_batch / 4u + min(n0 + j, params.n - 1u) * k4;
    }
    var xrow: array<u32, 16>;
    for (var i = 0u; i < TM; i++) {
        xrow[i] = (b * params.x_batch) / 4u + min(m0 + i, params.m - 1u) * k4;
    }
    var acc: array<vec4<f32>, 32>;   // acc[2i + h]: row m0 + i, columns n0 + 4h .. n0 + 4h + 4
    for (var k = 0u; k < k4; k++) {
        var wv: array<vec4<f32>, 8>;
        for (var j = 0u; j < TN; j++) {
            wv[j] = w4(wrow[j] + k);
        }
        for (var i = 0u; i < TM; i++) {
            let xv = x[xrow[i] + k];
            acc[2u * i] += vec4<f32>(dot(xv, wv[0]), dot(xv, wv[1]), dot(xv, wv[2]), dot(xv, wv[3]));
            acc[2u * i + 1u] += vec4<f32>(dot(xv, wv[4]), dot(xv, wv[5]), dot(xv, wv[6]), dot(xv, wv[7]));
        }
    }
    for (var i = 0u; i < TM; i++) {
        if m0 + i < params.m {
            for (var j = 0u; j < TN; j++) {
                if n0 + j < params.n {
                    store(b, m0 + i, n0 + j, acc[2u * i + j / 4u][j % 4u]);
                }
            }
        }
    }
}

const T: u32 = 16u;
var<workgroup> xs: array<array<f32, 16>, 16>;
var<workgroup> ws: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn linear_tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = wid.x * T + lid.x;
    let m = wid.y * T + lid.y;
    let b = wid.z;
    let xb = b * params.x_batch;
    let wb = b * params.w_batch + params.w_offset;
    var acc = 0.0;
    for (var k0 = 0u; k0 < params.k; k0 += T) {
        // x tile: row (wid.y * T + lid.y), column k0 + lid.x; W tile: column n, row k0 + lid.y.
        let kx = k0 + lid.x;
        let ky = k0 + lid.y;
        let mr = min(m, params.m - 1u);
        xs[lid.y][lid.x] = select(0.0, x_at(xb + mr * params.k + min(kx, params.k - 1u)), m < params.m && kx < params.k);
        let nc = min(n, params.n - 1u);
        let kc = min(ky, params.k - 1u);
        var wi = wb + kc * params.n + nc;
        if TRANS_B {
            wi = wb + nc * params.k + kc;
        }
        ws[lid.y][lid.x] = select(0.0, w_at(wi), n < params.n && ky < params.k);
        workgroupBarrier();
        for (var kk = 0u; kk < T; kk++) {
            acc = fma(xs[lid.y][kk], ws[kk][lid.x], acc);
        }
        workgroupBarrier();
    }
    if m < params.m && n < params.n {
        store(b, m, n, acc);
    }
}
