// A linear resampling along one axis with a banded tap table, four outputs per invocation:
//   resize_axis: x (outer, n_in, inner) -> y (outer, n_out, inner),
//                y[o, j, i] = sum_t table[n_out + j * taps + t] * x[o, start_j + t, i]
//                with start_j = u32(table[j]); taps past n_in are skipped (their weight is 0).
// Rows then columns of an NHWC image (inner = W C, then C) make a separable 2D resize; the same
// kernel with the transposed table is its input gradient (host/src/ops/resize.rs).
//
// Composed after common/flat4.wgsl.

struct Params {
    n: u32,      // elements of y
    n_in: u32,
    n_out: u32,
    inner: u32,
    taps: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn resize_axis(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i0 = first(gid, groups);
    for (var i = i0; i < min(i0 + 4u, params.n); i++) {
        let inner = i % params.inner;
        let j = (i / params.inner) % params.n_out;
        let outer = i / (params.inner * params.n_out);
        let start = u32(table[j]);
        var s = 0.0;
        for (var t = 0u; t < params.taps; t++) {
            let src = start + t;
            if src < params.n_in {
                s += table[params.n_out + j * params.taps + t] * x[(outer * params.n_in + src) * params.inner + inner];
            }
        }
        y[i] = s;
    }
}
