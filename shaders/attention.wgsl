// Multi-head scaled dot-product attention, fused (the score matrix never exists):
//   q (B, Lq, H*D), k (B, Lk, H*D), v (B, Lk, H*D) -> o (B, Lq, H*D)
//   o[b, i, h] = sum_j softmax_j(scale * q[b, i, h] . k[b, j, h]) v[b, j, h]
// One invocation per (query, head, batch) walks the keys once with an online softmax
// (running maximum and sum), so memory is O(D) per query whatever Lk is. The context may
// have another length than the queries (cross-attention). D <= 512.
//
// Composed after common/attention_params.wgsl (host/src/ops; Params, params and shared helpers are there).

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

const D_MAX: u32 = 512u;

@compute @workgroup_size(64, 1, 1)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = gid.y;
    let b = gid.z;
    if i >= params.lq {
        return;
    }
    let d = params.d;
    let width = params.heads * d;
    let qb = (b * params.lq + i) * width + h * d;
    var qv: array<f32, 512>;
    var acc: array<f32, 512>;
    for (var t = 0u; t < d; t++) {
        qv[t] = q[qb + t] * params.scale;
        acc[t] = 0.0;
    }
    var m = -3.0e38;
    var l = 0.0;
    var last = params.lk;
    if params.causal == 1u {
        last = min(i + 1u, params.lk);
    }
    for (var j = 0u; j < last; j++) {
        let kb = (b * params.lk + j) * width + h * d;
        var s = 0.0;
        for (var t = 0u; t < d; t++) {
            s = fma(qv[t], k[kb + t], s);
        }
        let m_new = max(m, s);
        let corr = exp(m - m_new);
        let p = exp(s - m_new);
        l = l * corr + p;
        for (var t = 0u; t < d; t++) {
            acc[t] = acc[t] * corr + p * v[kb + t];
        }
        m = m_new;
    }
    let inv = 1.0 / l;
    for (var t = 0u; t < d; t++) {
        o[qb + t] = acc[t] * inv;
    }
}

// attention_v4: the same, for D % 4 == 0, reading vec4s and taking keys four at a time: four
// independent dot products, one running-maximum correction per block of four keys (instead
// of one per key), and one pass over the accumulator per block. Chosen for CPU adapters,
// where the per-key accumulator traffic of `attention` dominates.
@group(0) @binding(0) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn attention_v4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = gid.y;
    let b = gid.z;
    if i >= params.lq {
        return;
    }
    let d4 = params.d / 4u;
    let w4 = params.heads * d4;
    let qb = (b * params.lq + i) * w4 + h * d4;
    var qv: array<vec4<f32>, 128>;
    var acc: array<vec4<f32>, 128>;
    for (var t = 0u; t < d4; t++) {
        qv[t] = q4[qb + t] * params.scale;
        acc[t] = vec4<f32>(0.0);
    }
    var m = -3.0e38;
    var l = 0.0;
    var last = params.lk;
    if params.causal == 1u {
        last = min(i + 1u, params.lk);
    }
    var j = 0u;
    for (; j + 4u <= last; j += 4u) {
        let kb = (b * params.lk + j) * w4 + h * d4;
        var s = vec4<f32>(0.0);
        for (var t = 0u; t < d4; t++) {
            let x = qv[t];
            s += vec4<f32>(dot(x, k4[kb + t]), dot(x, k4[kb + w4 + t]), dot(x, k4[kb + 2u * w4 + t]), dot(x, k4[kb + 3u * w4 + t]));
        }
        let m_new = max(m, max(max(s.x, s.y), max(s.z, s.w)));
        let corr = exp(m - m_new);
        let p = exp(s - vec4<f32>(m_new));
        l = l * corr + p.x + p.y + p.z + p.w;
        for (var t = 0u; t < d4; t++) {
            acc[t] = acc[t] * corr + p.x * v4[kb + t] + p.y * v4[kb + w4 + t] + p.z * v4[kb + 2u * w4 + t] + p.w * v4[kb + 3u * w4 + t];
        }
        m = m_new;
    }
    for (; j < last; j++) {
        let kb = (b * params.lk + j) * w4 + h * d4;
        var s = 0.0;
        for (var t = 0u; t < d4; t++) {
            s += dot(qv[t], k4[kb + t]);
        }
        let m_new = max(m, s);
        let corr = exp(m - m_new);
        let p = exp(s - m_new);
        l = l * corr + p;
        for (var t = 0u; t < d4; t++) {
            acc[t] = acc[t] * corr + p * v4[kb + t];
        }
        m = m_new;
    }
    let inv = 1.0 / l;
    for (var t = 0u; t < d4; t++) {
        o4[qb + t] = acc[t] * inv;
    }
}
