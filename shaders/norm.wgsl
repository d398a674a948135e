// Normalisations with learned scale and shift, one workgroup per normalised set:
//   group_norm: x (B, P, C) NHWC, G groups of C/G channels over all P pixels; optional SiLU
//   layer_norm: x (R, C), each row over its C values
// Mean first, then the variance about it (biased, as PyTorch), then the output: three reads,
// which keeps the variance accurate for large means.
//   gn_sum, gn_sq, gn_apply: the same three passes for a sample larger than one binding, run
//   once per band of rows (x and y bound to the band, p = the band's pixels): per-band sums
//   into `stats`, then the sums of squares about the mean of all bands, then the output.

struct Params {
    rows: u32,     // layer_norm: R; group_norm: B
    p: u32,        // group_norm: pixels per image
    c: u32,        // channels
    groups: u32,   // group_norm: G
    eps: f32,
    silu: u32,
    band: u32,     // gn_*: this band
    bands: u32,    // gn_*: number of bands of the sample
    total: u32,    // gn_*: pixels of the whole sample
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: Params;

const WG: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

fn reduce(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

// Element e of the set: its flat index and its channel.
fn gn_index(b: u32, g: u32, e: u32) -> vec2<u32> {
    let cg = params.c / params.groups;
    let pix = e / cg;
    let ch = g * cg + e % cg;
    return vec2<u32>((b * params.p + pix) * params.c + ch, ch);
}

// One workgroup per (group, sample). With at most 64 channels per group, lane l reads channel
// l % cg of pixels l / cg, l / cg + 64 / cg, ... (lanes past the last whole pixel idle): no
// integer division per element, which on a CPU adapter cost more than the loads. Wider groups
// walk the group's elements in order (gn_index).
@compute @workgroup_size(64, 1, 1)
fn group_norm(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lid = lid3.x;
    let g = wid.x;
    let b = wid.y;
    let cg = params.c / params.groups;
    let n = params.p * cg;
    let fast = cg <= WG;
    let step = WG / max(cg, 1u);
    let on = fast && lid < step * cg;
    let ch = g * cg + lid % max(cg, 1u);
    let first = (b * params.p + lid / max(cg, 1u)) * params.c + ch;
    let stride = step * params.c;
    var s = 0.0;
    if on {
        for (var i = first; i < (b + 1u) * params.p * params.c; i += stride) {
            s += x[i];
        }
    } else if !fast {
        for (var e = lid; e < n; e += WG) {
            s += x[gn_index(b, g, e).x];
        }
    }
    let mean = reduce(lid, s) / f32(n);
    var q = 0.0;
    if on {
        for (var i = first; i < (b + 1u) * params.p * params.c; i += stride) {
            let d = x[i] - mean;
            q += d * d;
        }
    } else if !fast {
        for (var e = lid; e < n; e += WG) {
            let d = x[gn_index(b, g, e).x] - mean;
            q += d * d;
        }
    }
    let inv = inverseSqrt(reduce(lid, q) / f32(n) + params.eps);
    if on {
        let scale = inv * gamma[ch];
        let shift = beta[ch] - mean * scale;
        for (var i = first; i < (b + 1u) * params.p * params.c; i += stride) {
            var v = x[i] * scale + shift;
            if params.silu == 1u {
                v = v / (1.0 + exp(-v));
            }
            y[i] = v;
        }
    } else if !fast {
        for (var e = lid; e < n; e += WG) {
            let ix = gn_index(b, g, e);
            var v = (x[ix.x] - mean) * inv * gamma[ix.y] + beta[ix.y];
            if params.silu == 1u {
                v = v / (1.0 + exp(-v));
            }
            y[ix.x] = v;
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn layer_norm(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let lid = lid3.x;
    let r = wid.y * nw.x + wid.x;
    if r >= params.rows {
        return;
    }
    let base = r * params.c;
    var s = 0.0;
    for (var i = lid; i < params.c; i += WG) {
        s += x[base + i];
    }
    let mean = reduce(lid, s) / f32(params.c);
    var q = 0.0;
    for (var i = lid; i < params.c; i += WG) {
        let d = x[base + i] - mean;
        q += d * d;
    }
    let inv = inverseSqrt(reduce(lid, q) / f32(params.c) + params.eps);
    for (var i = lid; i < params.c; i += WG) {
        y[base + i] = (x[base + i] - mean) * inv * gamma[i] + beta[i];
    }
}

// Band-wise GroupNorm. Bindings: x, then the stats buffers (bands x groups), then the output.
@group(0) @binding(0) var<storage, read> bx: array<f32>;
@group(0) @binding(1) var<storage, read_write> bsum: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn gn_sum(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lid = lid3.x;
    let g = wid.x;
    let n = params.p * (params.c / params.groups);
    var s = 0.0;
    for (var e = lid; e < n; e += WG) {
        s += bx[gn_index(0u, g, e).x];
    }
    let r = reduce(lid, s);
    if lid == 0u {
        bsum[params.band * params.groups + g] = r;
    }
}

@group(0) @binding(0) var<storage, read> qx: array<f32>;
@group(0) @binding(1) var<storage, read> qsum: array<f32>;
@group(0) @binding(2) var<storage, read_write> qsq: array<f32>;

fn band_mean(g: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < params.bands; k++) {
        s += qsum[k * params.groups + g];
    }
    return s / f32(params.total * (params.c / params.groups));
}

@compute @workgroup_size(64, 1, 1)
fn gn_sq(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lid = lid3.x;
    let g = wid.x;
    let n = params.p * (params.c / params.groups);
    let mean = band_mean(g);
    var q = 0.0;
    for (var e = lid; e < n; e += WG) {
        let d = qx[gn_index(0u, g, e).x] - mean;
        q += d * d;
    }
    let r = reduce(lid, q);
    if lid == 0u {
        qsq[params.band * params.groups + g] = r;
    }
}

@group(0) @binding(0) var<storage, read> ax: array<f32>;
@group(0) @binding(1) var<storage, read> agamma: array<f32>;
@group(0) @binding(2) var<storage, read> abeta: array<f32>;
@group(0) @binding(3) var<storage, read> asum: array<f32>;
@group(0) @binding(4) var<storage, read> asq: array<f32>;
@group(0) @binding(5) var<storage, read_write> ay: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn gn_apply(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lid = lid3.x;
    let g = wid.x;
    let cnt = f32(params.total * (params.c / params.groups));
    var s = 0.0;
    var q = 0.0;
    for (var k = 0u; k < params.bands; k++) {
        s += asum[k * params.groups + g];
        q += asq[k * params.groups + g];
    }
    let mean = s / cnt;
    let inv = inverseSqrt(q / cnt + params.eps);
    let n = params.p * (params.c / params.groups);
    for (var e = lid; e < n; e += WG) {
        let ix = gn_index(0u, g, e);
        var v = (ax[ix.x] - mean) * inv * agamma[ix.y] + abeta[ix.y];
        if params.silu == 1u {
            v = v / (1.0 + exp(-v));
        }
        ay[ix.x] = v;
    }
}
