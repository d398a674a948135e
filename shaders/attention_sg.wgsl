// attention_sg: the CPU-adapter variant of attention.wgsl (same Params and bindings) for
// adapters whose subgroups are exactly the 8 lanes of a workgroup (lavapipe on AVX2). Needs the
// SUBGROUP and SHADER_INT64 features, so it lives in its own file: attention.wgsl must compile
// without them.
//
// A workgroup is 8 queries of one head of one batch element. Keys go in blocks of 8: lane l
// loads key j0 + l (and later its value) and subgroupBroadcast hands it to the other lanes,
// so each key is loaded once per workgroup instead of once per lane (lavapipe loads storage
// buffers one lane at a time). Keys and values are read as u64: 64 bits per lane per step of
// that load loop instead of 32 (17-38% faster). Online softmax as in attention.wgsl: one
// running-maximum correction per block. Two entry points: attention_sg (any head size) and
// attention_sg_short (at most 48 wide). The head size is a pipeline constant (D4 = D / 4, at
// most 128), so that the loops over it have a known trip count.
//
// Composed after common/attention_params.wgsl, common/u64.wgsl (host/src/ops; Params, params and shared helpers are there).

override D4: u32 = 10u;

@group(0) @binding(0) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k4: array<vec2<u64>>;
@group(0) @binding(2) var<storage, read> v4: array<vec2<u64>>;
@group(0) @binding(3) var<storage, read_write> o4: array<vec4<f32>>;

// Elements 4g .. 4g + 4 of the keys, of the values.
fn key(g: u32) -> vec4<f32> {
    let v = k4[g];
    return vec4<f32>(f2(v.x), f2(v.y));
}
fn value(g: u32) -> vec4<f32> {
    let v = v4[g];
    return vec4<f32>(f2(v.x), f2(v.y));
}

// The 8 scores of this lane's query against keys j0 .. j0 + 8 (loaded one per lane).
fn scores(qv: ptr<function, array<vec4<f32>, 128>>, kb: u32) -> array<f32, 8> {
    var s: array<f32, 8>;
    for (var t = 0u; t < D4; t++) {
        let kl = key(kb + t);
        let x = (*qv)[t];
        s[0] += dot(x, subgroupBroadcast(kl, 0u));
        s[1] += dot(x, subgroupBroadcast(kl, 1u));
        s[2] += dot(x, subgroupBroadcast(kl, 2u));
        s[3] += dot(x, subgroupBroadcast(kl, 3u));
        s[4] += dot(x, subgroupBroadcast(kl, 4u));
        s[5] += dot(x, subgroupBroadcast(kl, 5u));
        s[6] += dot(x, subgroupBroadcast(kl, 6u));
        s[7] += dot(x, subgroupBroadcast(kl, 7u));
    }
    return s;
}

@compute @workgroup_size(8, 1, 1)
fn attention_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let h = wid.y;
    let b = wid.z;
    // No early return: subgroupBroadcast needs every lane. A query past the end computes
    // the last one and is not stored.
    let i_real = wid.x * 8u + lane;
    let i = min(i_real, params.lq - 1u);
    let w4 = params.heads * D4;
    let qb = (b * params.lq + i) * w4 + h * D4;
    var qv: array<vec4<f32>, 128>;
    var acc: array<vec4<f32>, 128>;
    for (var t = 0u; t < D4; t++) {
        qv[t] = q4[qb + t] * params.scale;
        acc[t] = vec4<f32>(0.0);
    }
    var m = -3.0e38;
    var l = 0.0;
    // Keys this workgroup needs: all, or up to its last query when causal.
    var last = params.lk;
    if params.causal == 1u {
        last = min(min(wid.x * 8u + 7u, params.lq - 1u) + 1u, params.lk);
    }
    for (var j0 = 0u; j0 < last; j0 += 8u) {
        // Lane l's key and value row; past the end (or causally hidden) keys get p = 0.
        let kb = (b * params.lk + min(j0 + lane, params.lk - 1u)) * w4 + h * D4;
        let s = scores(&qv, kb);
        var sv = array<f32, 8>(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
        var m_new = m;
        for (var u = 0u; u < 8u; u++) {
            let j = j0 + u;
            let visible = j < last && (params.causal == 0u || j <= i);
            sv[u] = select(-3.0e38, sv[u], visible);
            m_new = max(m_new, sv[u]);
        }
        let corr = exp(m - m_new);
        var p: array<f32, 8>;
        var psum = 0.0;
        for (var u = 0u; u < 8u; u++) {
            let j = j0 + u;
            let visible = j < last && (params.causal == 0u || j <= i);
            p[u] = select(0.0, exp(sv[u] - m_new), visible);
            psum += p[u];
        }
        l = l * corr + psum;
        m = m_new;
        for (var t = 0u; t < D4; t++) {
            let vl = value(kb + t);
            acc[t] = acc[t] * corr
                + p[0] * subgroupBroadcast(vl, 0u) + p[1] * subgroupBroadcast(vl, 1u)
                + p[2] * subgroupBroadcast(vl, 2u) + p[3] * subgroupBroadcast(vl, 3u)
                + p[4] * subgroupBroadcast(vl, 4u) + p[5] * subgroupBroadcast(vl, 5u)
                + p[6] * subgroupBroadcast(vl, 6u) + p[7] * subgroupBroadcast(vl, 7u);
        }
    }
    if i_real < params.lq {
        let inv = 1.0 / l;
        for (var t = 0u; t < D4; t++) {
            o4[qb + t] = acc[t] * inv;
        }
    }
}

// Score s of key j for query i, or -3e38 when the key is past the end or causally hidden.
fn mask(s: f32, j: u32, last: u32, i: u32) -> f32 {
    return select(-3.0e38, s, j < last && (params.causal == 0u || j <= i));
}

// attention_sg_short: the same for short heads (D4 <= 12; SD's 40-wide heads at its largest
// level): a key's loads all come before its arithmetic, and the scores are scalars. Faster
// there (11-15 vs 7 GFLOP/s on lavapipe), slower for longer heads, whose loaded keys no
// longer fit in registers.
@compute @workgroup_size(8, 1, 1)
fn attention_sg_short(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let h = wid.y;
    let b = wid.z;
    // No early return: subgroupBroadcast needs every lane. A query past the end computes
    // the last one and is not stored.
    let i_real = wid.x * 8u + lane;
    let i = min(i_real, params.lq - 1u);
    let w4 = params.heads * D4;
    let qb = (b * params.lq + i) * w4 + h * D4;
    var qv: array<vec4<f32>, 128>;
    var acc: array<vec4<f32>, 128>;
    for (var t = 0u; t < D4; t++) {
        qv[t] = q4[qb + t] * params.scale;
        acc[t] = vec4<f32>(0.0);
    }
    var m = -3.0e38;
    var l = 0.0;
    // Keys this workgroup needs: all, or up to its last query when causal.
    var last = params.lk;
    if params.causal == 1u {
        last = min(min(wid.x * 8u + 7u, params.lq - 1u) + 1u, params.lk);
    }
    var kl: array<vec4<f32>, 16>;
    for (var j0 = 0u; j0 < last; j0 += 8u) {
        // Lane l's key and value row; past the end (or causally hidden) keys get p = 0.
        let kb = (b * params.lk + min(j0 + lane, params.lk - 1u)) * w4 + h * D4;
        // All of the key's loads first, then the arithmetic (lavapipe's loads are branchy
        // loops over the lanes; values live across them get spilled).
        for (var t = 0u; t < D4; t++) {
            kl[t] = key(kb + t);
        }
        var s0 = 0.0; var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
        var s4 = 0.0; var s5 = 0.0; var s6 = 0.0; var s7 = 0.0;
        for (var t = 0u; t < D4; t++) {
            let x = qv[t];
            let kt = kl[t];
            s0 += dot(x, subgroupBroadcast(kt, 0u));
            s1 += dot(x, subgroupBroadcast(kt, 1u));
            s2 += dot(x, subgroupBroadcast(kt, 2u));
            s3 += dot(x, subgroupBroadcast(kt, 3u));
            s4 += dot(x, subgroupBroadcast(kt, 4u));
            s5 += dot(x, subgroupBroadcast(kt, 5u));
            s6 += dot(x, subgroupBroadcast(kt, 6u));
            s7 += dot(x, subgroupBroadcast(kt, 7u));
        }
        s0 = mask(s0, j0, last, i); s1 = mask(s1, j0 + 1u, last, i);
        s2 = mask(s2, j0 + 2u, last, i); s3 = mask(s3, j0 + 3u, last, i);
        s4 = mask(s4, j0 + 4u, last, i); s5 = mask(s5, j0 + 5u, last, i);
        s6 = mask(s6, j0 + 6u, last, i); s7 = mask(s7, j0 + 7u, last, i);
        let m_new = max(m, max(max(max(s0, s1), max(s2, s3)), max(max(s4, s5), max(s6, s7))));
        let corr = exp(m - m_new);
        // exp(-3e38 - m_new) is 0: hidden keys drop out.
        let p0 = exp(s0 - m_new); let p1 = exp(s1 - m_new); let p2 = exp(s2 - m_new); let p3 = exp(s3 - m_new);
        let p4 = exp(s4 - m_new); let p5 = exp(s5 - m_new); let p6 = exp(s6 - m_new); let p7 = exp(s7 - m_new);
        l = l * corr + ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));
        m = m_new;
        for (var t = 0u; t < D4; t++) {
            kl[t] = value(kb + t);
        }
        for (var t = 0u; t < D4; t++) {
            let vl = kl[t];
            acc[t] = acc[t] * corr
                + p0 * subgroupBroadcast(vl, 0u) + p1 * subgroupBroadcast(vl, 1u)
                + p2 * subgroupBroadcast(vl, 2u) + p3 * subgroupBroadcast(vl, 3u)
                + p4 * subgroupBroadcast(vl, 4u) + p5 * subgroupBroadcast(vl, 5u)
                + p6 * subgroupBroadcast(vl, 6u) + p7 * subgroupBroadcast(vl, 7u);
        }
    }
    if i_real < params.lq {
        let inv = 1.0 / l;
        for (var t = 0u; t < D4; t++) {
            o4[qb + t] = acc[t] * inv;
        }
    }
}
